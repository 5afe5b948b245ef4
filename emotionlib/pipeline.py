"""EmotionPipeline: photo -> faces with emotions, in-process; what the service serves.

    from emotionlib import EmotionPipeline

    pipeline = EmotionPipeline.from_model()          # the bundled model (models/), Haar detection
    for face in pipeline.predict(open("photo.jpg", "rb").read()):
        print(face.box, face.emotion, face.confidence)

Data flows one way, each step decided once, here: bytes -> upright image (a large JPEG
decoded at reduced size when only detection needs it) -> detections (the detector, the
given boxes, or the whole image) -> kept (detection-confidence filter) -> uint8 crops
(emotionlib.framing, then 48 px grayscale) -> probabilities (the classifier) -> Faces.
``locate`` runs everything before the classifier, so the service can send the crops to its
batching model worker and call ``faces`` with the answer; ``predict`` is both around
``classify``. The classifier is any callable from uint8 (N, S, S) faces to (N, 6)
probabilities in EMOTIONS order (emotionlib.classifier.Classifier).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emotionlib.classifier import DEFAULT_MODEL_TAG
from emotionlib.decode import Picture, decode_image, decode_picture
from emotionlib.detectors import make_detector
from emotionlib.errors import InputError
from emotionlib.framing import crop_face
from emotionlib.geometry import Box, Detection, check_boxes, check_inside, clip_box, shown
from emotionlib.labels import EMOTIONS
from emotionlib.options import PipelineOptions
from emotionlib.preprocess import face_pixels, to_gray


@dataclass(frozen=True)
class Face:
    """One face: where (box in pixels of the upright image, the detector's score, YuNet's five
    landmarks) and which emotion (with the probability of each of the six)."""
    box: Box
    emotion: str
    confidence: float
    scores: dict[str, float]
    detection_confidence: float | None = None  # None for given boxes and detect=False
    landmarks: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict:
        """The face as the HTTP API answers it (probabilities rounded to 4 places)."""
        score = self.detection_confidence
        return {"bounding_box": self.box.as_list(), "emotion": self.emotion,
                "confidence": round(self.confidence, 4),
                "scores": {name: round(p, 4) for name, p in self.scores.items()},
                "detection_confidence": None if score is None else round(score, 4)}


@dataclass(frozen=True)
class Located:
    """Everything before the classifier: the detections (in pixels of the upright image),
    their uint8 (N, S, S) crops, and the upright image when it was asked for (to draw on)."""
    detections: list[Detection]
    pixels: np.ndarray
    image: np.ndarray | None = None


def confidence_threshold(value) -> float:
    """min_detection_confidence as given (a number, or its text): a float from 0 to 1. Anything
    else, NaN, infinities and integers too large for a float (OverflowError) included, is an
    InputError."""
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or not 0.0 <= number <= 1.0:  # NaN compares false: refused too
        raise InputError("invalid_field", "field 'min_detection_confidence' must be a number from 0 to 1, "
                         f"got {shown(value)}")
    return number


class EmotionPipeline:
    """decode -> detect -> crop -> classify -> faces.

    classifier: callable uint8 (N, S, S) -> (N, 6) probabilities, or None when the caller
    classifies elsewhere (the service's model worker). options: PipelineOptions (the
    detector, its parameters, limits); keyword arguments override single options, e.g.
    ``detector="yunet"``. input_size: side of the classifier's square input.
    """

    def __init__(self, classifier: Callable[[np.ndarray], np.ndarray] | None = None,
                 options: PipelineOptions | None = None, *, input_size: int | None = None, **overrides):
        self.options = dataclasses.replace(options or PipelineOptions(), **overrides)
        self.classifier = classifier
        self.detector = make_detector(self.options.detector, self.options)
        self.input_size = int(input_size or getattr(classifier, "input_size", 48))

    @classmethod
    def from_model(cls, path: str | Path | None = None, options: PipelineOptions | None = None, *,
                   threads: int = 0, cache_dir: str | Path | None = None, **overrides) -> "EmotionPipeline":
        """The pipeline with a model file, no model store needed: the bundled model folder
        (default), a folder holding one, an .onnx file (labels and scaling from the .json
        beside it) or a Keras file (converted to ONNX on first use, into ``cache_dir``;
        emotionlib.classifier.Classifier.from_file says how)."""
        from emotionlib.classifier import Classifier

        return cls(Classifier.from_file(path, threads=threads, cache_dir=cache_dir), options, **overrides)

    @classmethod
    def from_store(cls, tag: str = DEFAULT_MODEL_TAG, options: PipelineOptions | None = None, *,
                   threads: int = 0, **overrides) -> "EmotionPipeline":
        """The pipeline with the model import_model.py registered in the BentoML model store."""
        import bentoml

        from emotionlib.classifier import Classifier

        return cls(Classifier.from_store(bentoml.models.get(tag), threads), options, **overrides)

    def prepare(self) -> "EmotionPipeline":
        """Warm up the classifier and detector (first calls allocate)."""
        self.detect(np.full((64, 64, 3), 128, np.uint8))
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
        """uint8 (N, S, S) grayscale classifier inputs, framed by crop_face for the detector
        (``framing``: another detector's name, or "none" to cut the boxes exactly)."""
        gray = to_gray(image)
        framing = framing or self.detector.name
        out = np.empty((len(detections), self.input_size, self.input_size), np.uint8)
        for i, d in enumerate(detections):
            out[i] = face_pixels(crop_face(gray, d.box, framing, d.landmarks), self.input_size)
        return out

    def locate(self, photo, detect: bool = True, boxes: Sequence | None = None,
               min_detection_confidence=None, keep_image: bool = False, detector=None) -> Located:
        """Everything a request needs before the classifier, decided here once.

        photo: JPEG/PNG bytes, or an RGB (or gray) uint8 array used as it is. boxes: classify
        exactly these [x, y, w, h] regions (no detection; checked: four integers, positive
        size, at most max_faces_per_image, inside the image). detect=False: the whole image is
        one face. min_detection_confidence (default: the options'): drop detected faces the
        detector scores lower; given boxes and detect=False are never dropped. keep_image:
        also return the upright image. detector: find the faces with this one instead of the
        pipeline's own (same kind, so the crops are framed alike: a video's whole-frame or
        tracked-face search, emotionlib/video/locate.py). Bytes are decoded at reduced size when only detection
        needs them (no boxes, no image kept): libjpeg's DCT scaling decodes 1/2, 1/4 or 1/8 of
        a large JPEG's pixels, detections are mapped back to the full image, and when a face
        is smaller than the classifier's input there, the photo is decoded again at full size
        for the crops, so reduction never costs accuracy. The gray image is made once.
        """
        threshold = confidence_threshold(
            self.options.min_detection_confidence if min_detection_confidence is None else min_detection_confidence)
        given = None if boxes is None else check_boxes(boxes, self.options.max_faces_per_image)
        full_size = given is not None or keep_image
        picture = self._picture(photo, None if full_size else self.options.detect_max_side if detect
                                else self.input_size)
        gray = to_gray(picture.rgb)
        if given is not None:
            check_inside(given, picture.width, picture.height)
            found, framing = [Detection(box, None) for box in given], "none"
        elif detect:
            found = [d for d in (detector or self.detector).detect(picture.rgb, gray)
                     if d.score is None or d.score >= threshold]
            framing = None
        else:
            found, framing = [Detection(Box(0, 0, gray.shape[1], gray.shape[0]), None)], "none"
        detections = [to_full_image(d, picture) for d in found]
        if picture.reduced and any(min(d.box.w, d.box.h) < self.input_size for d in found):
            gray, found = to_gray(decode_image(photo, self.options.max_image_pixels)), detections
        return Located(detections, self.crops(gray, found, framing), picture.rgb if keep_image else None)

    def _picture(self, photo, min_side: int | None) -> Picture:
        if isinstance(photo, (bytes, bytearray, memoryview)):
            return decode_picture(bytes(photo), self.options.max_image_pixels, min_side=min_side)
        image = np.asarray(photo)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
            raise ValueError(f"expected JPEG/PNG bytes or a non-empty uint8 image array, got {image.dtype} "
                             f"{image.shape}")
        return Picture(image, image.shape[1], image.shape[0])

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            raise RuntimeError("this pipeline has no classifier; make it with EmotionPipeline.from_model() "
                               "or from_store()")
        return np.asarray(self.classifier(pixels), dtype=np.float64)

    @staticmethod
    def faces(detections: Sequence[Detection], probabilities) -> list[Face]:
        """Detections + (N, 6) EMOTIONS probabilities -> Faces, in the detections' order."""
        faces = []
        for d, row in zip(detections, np.asarray(probabilities, dtype=np.float64)):
            best = int(row.argmax())
            faces.append(Face(d.box, EMOTIONS[best], float(row[best]),
                              {name: float(p) for name, p in zip(EMOTIONS, row)}, d.score, d.landmarks))
        return faces

    def predict(self, photo, detect: bool = True, boxes: Sequence | None = None,
                min_detection_confidence=None) -> list[Face]:
        """Every face in ``photo`` (JPEG/PNG bytes or an RGB uint8 array) with its emotion, left
        to right: what POST /emotion answers for the same photo and fields (``locate`` says how)."""
        located = self.locate(photo, detect, boxes, min_detection_confidence)
        if not located.detections:
            return []
        return self.faces(located.detections, self.classify(located.pixels))

    def video(self, source, fps: float = 2.0, **options):
        """Every person's emotions over a clip (bytes or a path): a VideoResult with the clip's
        info, each analysed frame's faces with track ids, and a summary per track. Options:
        see ``video_frames``. Raises InputError for a clip that cannot be analysed."""
        with self.video_frames(source, fps, **options) as analysis:
            return analysis.result()

    def video_frames(self, source, fps: float = 2.0, *, min_detection_confidence=None, **options):
        """The clip as a VideoAnalysis to iterate (one VideoFrame at a time, for streaming
        callers); options: detect, min_detection_confidence, keep_images, batch_frames,
        prefetch, limits, max_gap_s (emotionlib.video.analysis.VideoAnalysis)."""
        from emotionlib.video.analysis import VideoAnalysis

        if min_detection_confidence is not None:  # refused before the clip is written and opened
            min_detection_confidence = confidence_threshold(min_detection_confidence)
        return VideoAnalysis(self, source, fps, min_detection_confidence=min_detection_confidence, **options)


def to_full_image(detection: Detection, picture: Picture) -> Detection:
    """A detection in the pixels of ``picture.rgb`` -> the same in the full upright image."""
    if not picture.reduced:
        return detection
    sx, sy = picture.scale_x, picture.scale_y
    b = detection.box
    box = clip_box(b.x * sx, b.y * sy, b.w * sx, b.h * sy, picture.width, picture.height) or Box(0, 0, 1, 1)
    landmarks = None if detection.landmarks is None else tuple((x * sx, y * sy) for x, y in detection.landmarks)
    return Detection(box, detection.score, landmarks)
