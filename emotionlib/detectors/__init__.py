"""Face detectors behind one interface: ``detect(image, gray=None) -> list[Detection]``.

``haar`` (OpenCV's frontal-face cascade, the default) and ``yunet`` (cv2.FaceDetectorYN with
the bundled ONNX model, which also gives five landmarks). ``make_detector(name, options)``
builds one; each lives in its own module and imports only emotionlib.geometry (and its
options from emotionlib.options).
"""
from __future__ import annotations

from emotionlib.options import DETECTORS


def make_detector(name: str = "haar", options=None):
    """The detector called ``name`` with the parameters of ``options`` (emotionlib.PipelineOptions;
    defaults if None)."""
    if name == "haar":
        from emotionlib.detectors.haar import HaarDetector, HaarParams

        return HaarDetector(HaarParams.from_options(options) if options else HaarParams())
    if name == "yunet":
        from emotionlib.detectors.yunet import YuNetDetector, YuNetParams

        return YuNetDetector(YuNetParams.from_options(options) if options else YuNetParams())
    raise ValueError(f"detector must be one of {DETECTORS}, got {name!r}")


def set_detect_threads(threads: int) -> None:
    """OpenCV threads of this process (0: OpenCV's default, one per core)."""
    import cv2

    cv2.setNumThreads(threads if threads > 0 else -1)
