"""Face emotion recognition: POST a photo to /emotion, get every face with its emotion; POST a
clip to /emotion/video (long ones: the task /emotion/video/task), get every person's over time.

Two BentoML services: EmotionAPI (HTTP on port 9000: the face pipeline, emotionlib.EmotionPipeline,
up to the faces' crops) and EmotionModel (the classifier on ONNX Runtime behind a greedy batcher,
so faces from concurrent requests share one forward pass; crops travel as uint8 48x48). The
endpoints parse their fields, call the pipeline (photos.py, video.py), and answers_errors turns
its errors into JSON answers; the rest of HTTP (settings, limits, uploads, errors, library
patches) is in emotionlib/serving/.
"""
from __future__ import annotations

import logging
import os
import time

# Faces are personal data: no usage statistics to BentoML's vendor, even from a plain
# `bentoml serve .` whose command line decided before this import (patches.no_usage_tracking);
# first, so that not even a failed start is reported.
from emotionlib.serving import patches  # noqa: E402

patches.no_usage_tracking()

import bentoml  # noqa: E402
import numpy as np  # noqa: E402
from bentoml.exceptions import ServiceUnavailable  # noqa: E402
from PIL.Image import Image  # noqa: E402
from starlette.responses import Response  # noqa: E402

from emotionlib import EmotionPipeline  # noqa: E402
from emotionlib.detectors import set_detect_threads  # noqa: E402
from emotionlib.pipeline import confidence_threshold  # noqa: E402
from emotionlib.serving import app  # noqa: E402
from emotionlib.serving.batching import GreedyBatcher, QueueTimeout  # noqa: E402
from emotionlib.serving.budget import MemoryBudget  # noqa: E402
from emotionlib.serving.errors import answers_errors, refused  # noqa: E402
from emotionlib.serving.fields import (BoxesField, ConfidenceField, FacesAnswer, FpsField, VideoAnswer,  # noqa: E402
                                      annotated_response, parse_boxes, wants_json)
from emotionlib.serving.metrics import metrics  # noqa: E402
from emotionlib.serving.photos import ModelWorker, Photos  # noqa: E402
from emotionlib.serving.readiness import ModelProbe  # noqa: E402
from emotionlib.serving.settings import service_settings  # noqa: E402
from emotionlib.serving.spool import UploadedFile  # noqa: E402
from emotionlib.serving.upload import UploadedBytes  # noqa: E402
from emotionlib.serving.video import Videos  # noqa: E402

# Every EMOTION_* variable, checked once: a bad value stops the service here with one line.
SETTINGS = service_settings()
# Every library patch, once the library versions are checked (emotionlib/serving/patches.py).
patches.apply(max_upload_bytes=max(SETTINGS.limits.max_upload_bytes, SETTINGS.limits.max_batch_upload_bytes))
logger = logging.getLogger("emotion")
logger.setLevel(SETTINGS.service.log_level)
EMOTION_MODEL = bentoml.models.BentoModel(SETTINGS.model.model_tag)


def stored_model():
    """The model in the store, or a start-up error that says how to get one there."""
    if EMOTION_MODEL.stored is None:
        raise RuntimeError(f"no model {SETTINGS.model.model_tag!r} in the BentoML model store "
                           f"({os.environ.get('BENTOML_HOME', '~/bentoml')}); run `python import_model.py` first")
    return EMOTION_MODEL.stored


stored_model()  # fail at import, before any worker starts, rather than serving 500s without a model


# The model worker's deadline (EMOTION_MODEL_TIMEOUT_S) is shorter than the client's 60 s.
# runner_connection: BentoML's internal client otherwise closes its aiohttp session every 100
# calls while other calls are still in flight on it: the "dropped connections" under load.
@bentoml.service(name="emotion_model", workers=1, traffic={"timeout": SETTINGS.model.model_timeout_s},
                 runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9})
class EmotionModel:
    """Owns the classifier (ONNX Runtime); uint8 (N, S, S) faces -> (N, 6) EMOTIONS probabilities."""

    bento_model = EMOTION_MODEL

    def __init__(self) -> None:
        from emotionlib.classifier import Classifier

        self.classifier = Classifier.from_store(stored_model(), SETTINGS.model.model_threads)
        self.classifier.warm_up()  # before /readyz says ready
        self.batcher = GreedyBatcher(self.classify, SETTINGS.model.model_max_batch_faces,
                                     SETTINGS.model.model_max_wait_ms / 1000)
        logger.info("loaded %s (%s)", stored_model().tag, ", ".join(self.classifier.labels))

    def classify(self, faces: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        probs = self.classifier(faces)
        metrics().batch_size.observe(len(faces))
        metrics().inference.observe(time.perf_counter() - started)
        return probs.astype(np.float32)

    @bentoml.api
    async def predict(self, faces: np.ndarray) -> np.ndarray:
        """Faces of concurrent calls share one forward pass (emotionlib.serving.batching)."""
        try:
            return await self.batcher(faces)
        except QueueTimeout as error:
            raise ServiceUnavailable(str(error)) from None


# No BentoML max_concurrency: it counts a request from its first byte, so slow uploads took
# every slot. The upload guard (emotionlib/serving/upload.py) limits uploads and processing apart.
# runner_probe off: /readyz answers from ModelProbe (emotionlib/serving/readiness.py) instead of
# asking the model worker on every call (seconds while that worker is down).
@bentoml.service(name="emotion_api", http={"port": 9000}, workers=SETTINGS.service.api_workers,
                 traffic={"timeout": 60}, runner_probe={"enabled": False})
class EmotionAPI:
    model = bentoml.depends(EmotionModel)

    def __init__(self) -> None:
        set_detect_threads(SETTINGS.service.detect_threads)
        pipeline = EmotionPipeline(options=SETTINGS.detection, input_size=stored_model().info.metadata["input_size"])
        self.model_probe = ModelProbe.of(lambda: self.model)
        # looked up per call: a remote client has its endpoints only once it has connected
        model = ModelWorker(lambda faces: self.model.to_async.predict(faces), SETTINGS.model.model_timeout_s,
                            on_answer=self.model_probe.saw_answer)
        budget = MemoryBudget(SETTINGS.limits.max_image_memory_bytes)  # one per worker, for every endpoint
        self.photos = Photos(pipeline, model, SETTINGS.limits.max_decodes_in_progress, budget)
        limits = SETTINGS.limits
        self.videos = Videos(pipeline, model, self.photos.slots, limits.video_limits(), limits.video_limits(task=True),
                             limits.max_videos_in_progress, budget)

    @bentoml.on_startup
    async def start_model_probe(self) -> None:
        await self.model_probe.start()

    @bentoml.on_shutdown
    async def stop_model_probe(self) -> None:
        await self.model_probe.stop()

    async def __is_ready__(self) -> bool:
        return self.model_probe.ready

    @bentoml.api(route="/emotion")
    @answers_errors
    async def emotion(self, image: UploadedBytes, detect: bool = True, boxes: BoxesField = None,
                      min_detection_confidence: ConfidenceField = None) -> FacesAnswer:
        """Every face in a JPEG or PNG photo with its emotion, left to right.

        `detect=false` treats the whole image as one already-cropped face; `boxes` (a JSON
        list of [x, y, w, h]) classifies exactly those regions instead of detecting faces;
        `min_detection_confidence` (0-1) drops detected faces the detector scores lower.
        """
        located = await self.photos.locate(image, detect=detect, boxes=parse_boxes(boxes),
                                           min_detection_confidence=min_detection_confidence)
        return [face.to_dict() for face in (await self.photos.faces([located]))[0]]

    @bentoml.api(route="/emotion/annotate")
    @answers_errors
    async def annotate(self, image: UploadedBytes, detect: bool = True, boxes: BoxesField = None,
                       min_detection_confidence: ConfidenceField = None) -> Image:
        """The photo (JPEG in: JPEG out; PNG in: PNG out), upright, with each face's box and
        `emotion confidence` label drawn; the faces' JSON (as /emotion answers it) in the
        `X-Emotion-Faces` header for up to 32 faces (`X-Emotion-Face-Count` always). With
        `Accept: application/json`: `{"faces": [...], "media_type": ..., "image": base64}`."""
        answer = await self.photos.annotated(image, as_json=wants_json(EmotionAPI.context), detect=detect,
                                             boxes=parse_boxes(boxes),
                                             min_detection_confidence=min_detection_confidence)
        return annotated_response(answer)

    @bentoml.api(route="/emotion/batch")
    @answers_errors
    async def batch(self, images: list[UploadedBytes], detect: bool = True,
                    min_detection_confidence: ConfidenceField = None) -> list[dict]:
        """Many photos in one request (repeat the file field `images`). One entry per photo,
        in request order: `{"faces": [...]}`, or that photo's own error object."""
        if min_detection_confidence is not None:  # a bad field is the request's error, not a photo's
            min_detection_confidence = confidence_threshold(min_detection_confidence)
        entries = await self.photos.locate_each(images, SETTINGS.limits.max_upload_bytes, detect=detect,
                                                min_detection_confidence=min_detection_confidence)
        located = [entry for entry in entries if not isinstance(entry, Exception)]
        faces = iter(await self.photos.faces(located))
        return [refused(entry) if isinstance(entry, Exception) else {"faces": [f.to_dict() for f in next(faces)]}
                for entry in entries]

    @bentoml.api(route="/emotion/video")
    @answers_errors
    async def video(self, video: UploadedFile, fps: FpsField = None, detect: bool = True,
                    min_detection_confidence: ConfidenceField = None) -> VideoAnswer:
        """Every person's emotions over a clip (MP4, MOV, WebM, AVI or MKV; up to
        EMOTION_MAX_VIDEO_SECONDS, longer ones: /emotion/video/task): `clip` (duration, frame
        rate, size, frames analysed), `frames` (each analysed frame's time `t` and its faces
        as /emotion answers them, with a `track_id`), `tracks` (per person: first and last
        time, frames seen, mean of each emotion, dominant emotion, share of frames)."""
        return await self.videos.analysed(video, fps, detect, min_detection_confidence)

    @bentoml.api(route="/emotion/video/annotate")
    @answers_errors
    async def video_annotate(self, video: UploadedFile, fps: FpsField = None, detect: bool = True,
                             min_detection_confidence: ConfidenceField = None) -> bytes:
        """The clip as WebM (VP8) at the analysed frame rate, each face boxed and labelled
        `#track emotion confidence`."""
        body, media_type = await self.videos.annotated(video, fps, detect, min_detection_confidence)
        return Response(body, media_type=media_type)

    @bentoml.task(route="/emotion/video/task")
    @answers_errors
    async def video_task(self, video: UploadedFile, fps: FpsField = None, detect: bool = True,
                         min_detection_confidence: ConfidenceField = None) -> VideoAnswer:
        """A long clip (up to EMOTION_MAX_VIDEO_TASK_SECONDS) as a task: POST
        /emotion/video/task/submit answers `{"task_id", "status"}`; GET
        /emotion/video/task/status?task_id=... says `in_progress`, `completed` or `failed`;
        GET /emotion/video/task/get?task_id=... gives what /emotion/video answers (or the
        error). The clip is kept in a private temporary file only while its task runs."""
        return await self.videos.analysed(video, fps, detect, min_detection_confidence, task=True)


app.wrap(EmotionAPI, SETTINGS)  # errors shaped, API key, upload guard, GET /ui
