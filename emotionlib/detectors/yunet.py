"""YuNet (cv2.FaceDetectorYN with the bundled ONNX model): boxes, scores, five landmarks.

The model and its Apache-2.0 license are in detectors/models/ (see NOTICE there).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotionlib.geometry import Detection, downscale, keep_faces, scale_detections
from emotionlib.options import PipelineOptions
from emotionlib.pool import IdlePool

_DEFAULTS = PipelineOptions()
MODEL_FILE = Path(__file__).resolve().parent / "models" / "face_detection_yunet_2023mar.onnx"


@dataclass(frozen=True)
class YuNetParams:
    """max_side: longer side of the detection image; score_threshold / nms_threshold as in
    the model's published evaluation (0.6 / 0.3)."""
    max_side: int = _DEFAULTS.detect_max_side
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    max_faces: int = _DEFAULTS.max_faces_per_image

    @classmethod
    def from_options(cls, options: PipelineOptions) -> "YuNetParams":
        return cls(max_side=options.detect_max_side, max_faces=options.max_faces_per_image)


class YuNetDetector:
    name = "yunet"

    def __init__(self, params: YuNetParams = YuNetParams()):
        if not MODEL_FILE.is_file():
            raise RuntimeError(f"the YuNet model is missing: {MODEL_FILE}")
        self.params = params
        # One cv2.FaceDetectorYN per concurrent detection (it keeps per-call state and buffers
        # sized to the input): pooled, and dropped when the worker idles.
        self._nets = IdlePool(self._create)

    def _create(self):
        p = self.params
        # The input size is set per image in detect(); (320, 320) is only a placeholder.
        return cv2.FaceDetectorYN.create(str(MODEL_FILE), "", (320, 320), p.score_threshold, p.nms_threshold, 5000)

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        """Faces in an RGB (or gray) uint8 image; ``gray`` is not needed by YuNet."""
        height, width = image.shape[:2]
        small, scale = downscale(image, self.params.max_side)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR if small.ndim == 3 else cv2.COLOR_GRAY2BGR)
        with self._nets.borrow() as net:
            net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = net.detect(bgr)
        if faces is None or not len(faces):
            return []
        faces = np.asarray(faces, dtype=np.float64)
        landmarks = faces[:, 4:14].reshape(-1, 5, 2)
        return keep_faces(scale_detections(faces[:, :4], scale, width, height, faces[:, 14], landmarks),
                          self.params.max_faces)
