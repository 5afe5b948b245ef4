"""EmotionPipeline: photo -> faces with emotions, in-process (what service.py serves).

    from emotionlib.pipeline import EmotionPipeline

    pipeline = EmotionPipeline.from_store()          # the registered model, Haar detection
    pipeline.prepare()                               # warm up (optional)
    for face in pipeline.predict(open("photo.jpg", "rb").read()):
        print(face.box, face.emotion, face.confidence)

Steps, each callable on its own: ``decode`` (bytes -> RGB) -> ``detect`` (-> Detections)
-> ``crops`` (emotionlib.framing.crop_face, then 48 px uint8 grayscale) -> ``classify``
(-> (N, 6) probabilities) -> ``faces``. ``locate`` runs everything before the classifier,
so the service can send the uint8 crops to its batching model worker and call ``faces``
with the answer. The classifier is any callable from uint8 (N, S, S) faces to (N, 6)
probabilities in EMOTIONS order (emotionlib.classifier.Classifier in-process).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from emotionlib.decode import Picture, decode_image, decode_picture
from emotionlib.detectors import make_detector
from emotionlib.geometry import Box, Detection, clip_box
from emotionlib.classifier import DEFAULT_MODEL_TAG
from emotionlib.framing import crop_face
from emotionlib.labels import EMOTIONS
from emotionlib.preprocess import face_pixels, to_gray
from emotionlib.options import PipelineOptions


@dataclass(frozen=True)
class Face:
    """One face: where (box, detector score, landmarks) and which emotion (with all scores)."""
    box: Box
    detector_score: float | None
    landmarks: tuple[tuple[float, float], ...] | None
    emotion: str
    confidence: float
    scores: dict[str, float]

    def as_dict(self) -> dict:
        """The HTTP API's JSON object (probabilities rounded to 4 places)."""
        return {"bounding_box": self.box.as_list(), "emotion": self.emotion,
                "confidence": round(self.confidence, 4),
                "scores": {name: round(p, 4) for name, p in self.scores.items()},
                "detection_confidence": None if self.detector_score is None else round(self.detector_score, 4)}


@dataclass(frozen=True)
class Located:
    """Everything before the classifier: detections and their uint8 (N, S, S) crops."""
    detections: list[Detection]
    pixels: np.ndarray


class EmotionPipeline:
    """decode -> detect -> crop -> preprocess -> classify -> faces.

    classifier: callable uint8 (N, S, S) -> (N, 6) probabilities, or None when the caller
    classifies elsewhere (the service's model worker). detector: "haar" or "yunet" (default:
    options.detector). input_size: side of the classifier's square input.
    """

    def __init__(self, classifier: Callable[[np.ndarray], np.ndarray] | None = None,
                 detector: str | None = None, options: PipelineOptions | None = None, input_size: int | None = None):
        self.options = options or PipelineOptions()
        self.classifier = classifier
        self.detector = make_detector(detector or self.options.detector, self.options)
        self.input_size = int(input_size or getattr(classifier, "input_size", 48))

    @classmethod
    def from_store(cls, tag: str = DEFAULT_MODEL_TAG, detector: str | None = None,
                   options: PipelineOptions | None = None, threads: int = 0) -> "EmotionPipeline":
        """The pipeline with the model registered by import_model.py, run in this process."""
        import bentoml

        from emotionlib.classifier import Classifier

        classifier = Classifier.from_store(bentoml.models.get(tag), threads)
        return cls(classifier, detector, options)

    def prepare(self) -> "EmotionPipeline":
        """Warm up the classifier and detector (first calls allocate)."""
        blank = np.full((64, 64, 3), 128, np.uint8)
        self.detect(blank)
        if self.classifier is not None:
            self.classify(np.zeros((1, self.input_size, self.input_size), np.uint8))
        return self

    @property
    def detector_name(self) -> str:
        return self.detector.name

    def decode(self, data: bytes) -> np.ndarray:
        """JPEG/PNG bytes -> upright RGB uint8 (raises emotionlib.errors.InputError)."""
        return decode_image(data, self.options.max_image_pixels)

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        return self.detector.detect(image, gray)

    def crops(self, image: np.ndarray, detections: Sequence[Detection], framing: str | None = None) -> np.ndarray:
        """uint8 (N, S, S) grayscale classifier inputs, framed by crop_face for the detector."""
        gray = to_gray(image)
        framing = framing or self.detector.name
        out = np.empty((len(detections), self.input_size, self.input_size), np.uint8)
        for i, d in enumerate(detections):
            out[i] = face_pixels(crop_face(gray, d.box, framing, d.landmarks), self.input_size)
        return out

    def locate(self, image, detect: bool = True, boxes: Sequence[Box] | None = None) -> Located:
        """Decode (if bytes), find faces (or take ``boxes``, or the whole image when
        ``detect`` is False) and cut their crops; the gray image is made once."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            if boxes is None:
                return self._locate_reduced(bytes(image), detect)
            image = self.decode(image)
        image = np.asarray(image)
        gray = to_gray(image)
        height, width = gray.shape[:2]
        if boxes is not None:
            detections = [Detection(Box(*b) if not isinstance(b, Box) else b, None) for b in boxes]
            framing = "none"  # no detector: no score
        elif detect:
            detections, framing = self.detect(image, gray), None
        else:
            detections, framing = [Detection(Box(0, 0, width, height), None)], "none"
        return Located(detections, self.crops(gray, detections, framing))

    def _locate_reduced(self, data: bytes, detect: bool) -> Located:
        """locate() for uploaded bytes, decoding a large JPEG at reduced size.

        Detection needs only a detect_max_side image (the whole-image "face" of detect=False
        only the classifier's input size), so libjpeg's DCT scaling decodes 1/2, 1/4 or 1/8 of
        the pixels: less time and memory. Detections are mapped back to the full upright
        image, as the API reports them. A crop from the reduced image is as good as one from
        the full image while it keeps at least input_size pixels per side (face_pixels only
        shrinks it further); if a face is smaller than that there, the photo is decoded again
        at full size for the crops, so reduction never costs accuracy.
        """
        min_side = self.options.detect_max_side if detect else self.input_size
        picture = decode_picture(data, self.options.max_image_pixels, min_side=min_side)
        gray = to_gray(picture.rgb)
        height, width = gray.shape[:2]
        if detect:
            found, framing = self.detect(picture.rgb, gray), None
        else:
            found, framing = [Detection(Box(0, 0, width, height), None)], "none"  # no detector: no score
        detections = [to_full_image(d, picture) for d in found]
        if picture.reduced and any(min(d.box.w, d.box.h) < self.input_size for d in found):
            return Located(detections, self.crops(to_gray(decode_image(data, self.options.max_image_pixels)),
                                                  detections, framing))
        return Located(detections, self.crops(gray, found, framing))

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            raise RuntimeError("this pipeline has no classifier; pass one (e.g. EmotionPipeline.from_store())")
        return np.asarray(self.classifier(pixels), dtype=np.float64)

    @staticmethod
    def faces(detections: Sequence[Detection], probabilities) -> list[Face]:
        """Detections + (N, 6) EMOTIONS probabilities -> Faces, in the detections' order."""
        faces = []
        for d, row in zip(detections, np.asarray(probabilities, dtype=np.float64)):
            best = int(row.argmax())
            faces.append(Face(d.box, d.score, d.landmarks, EMOTIONS[best], float(row[best]),
                              {name: float(p) for name, p in zip(EMOTIONS, row)}))
        return faces

    def predict(self, image, detect: bool = True, boxes: Sequence[Box] | None = None) -> list[Face]:
        """Every face in ``image`` (JPEG/PNG bytes or an RGB uint8 array) with its emotion."""
        located = self.locate(image, detect, boxes)
        if not located.detections:
            return []
        return self.faces(located.detections, self.classify(located.pixels))


def to_full_image(detection: Detection, picture: Picture) -> Detection:
    """A detection in the pixels of ``picture.rgb`` -> the same in the full upright image."""
    if not picture.reduced:
        return detection
    sx, sy = picture.scale_x, picture.scale_y
    b = detection.box
    box = clip_box(b.x * sx, b.y * sy, b.w * sx, b.h * sy, picture.width, picture.height) or Box(0, 0, 1, 1)
    landmarks = None if detection.landmarks is None else tuple((x * sx, y * sy) for x, y in detection.landmarks)
    return Detection(box, detection.score, landmarks)
