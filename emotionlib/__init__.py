"""Faces and their emotions in photos, in-process: the face pipeline the service serves.

    from emotionlib import EmotionPipeline

    pipeline = EmotionPipeline.from_model()      # the bundled model; or from_model(path), from_store()
    for face in pipeline.predict(open("photo.jpg", "rb").read()):
        print(face.box, face.emotion, face.confidence)

Light: numpy, OpenCV, Pillow and ONNX Runtime, no web or serving library (those live in
emotionlib.serving, the HTTP layer service.py imports).
"""
from emotionlib.errors import EmotionError, InputError
from emotionlib.options import PipelineOptions
from emotionlib.pipeline import EmotionPipeline, Face

__all__ = ["EmotionPipeline", "Face", "PipelineOptions", "EmotionError", "InputError"]
