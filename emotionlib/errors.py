"""The pipeline's errors: a stable ``code`` a program can branch on and a ``message`` a person
can act on. Nothing here knows about HTTP: emotionlib.serving.errors maps codes to statuses."""
from __future__ import annotations


class EmotionError(Exception):
    """An error with a ``code`` (snake_case, stable) and a ``message``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class InputError(EmotionError, ValueError):
    """What the caller gave cannot be used: a photo that is not a JPEG/PNG or does not decode,
    too many pixels, boxes outside the image, an option out of its range."""
