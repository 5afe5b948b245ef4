"""Options, each declared once: its name, type, range, default and help, on a dataclass field.

``option(default, help=..., low=..., high=...)`` declares one; the dataclass that holds it
checks every value when it is made (ValueError naming the option). ``PipelineOptions`` are
the face pipeline's; the service reads the same declarations (and its own groups, in
emotionlib.serving.settings) from ``EMOTION_*`` variables and writes the README's
configuration table from them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from emotionlib.decode import DEFAULT_MAX_PIXELS

# The face detectors (emotionlib/detectors/, one module each).
DETECTORS = ("haar", "yunet")


@dataclass(frozen=True)
class Option:
    """What one option accepts. ``low``/``high``: inclusive bounds (``above``: exclusive lower
    bound instead); ``choices``: the accepted words (compared in lower case, or upper case when
    ``upper``); ``check`` + ``accepted``: any other rule, described. ``old_names``: environment
    variables it had before (still read, with a warning); ``secret``: never shown."""
    help: str
    type: type
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple[str, ...] = ()
    upper: bool = False
    check: Callable[[Any], bool] | None = None
    accepted: str = ""
    old_names: tuple[str, ...] = ()
    secret: bool = False

    def describe(self) -> str:
        """What values are accepted, in words (error messages, the README)."""
        if self.accepted:
            return self.accepted
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.type is int else "a number"
        fmt = (lambda v: f"{v:,.0f}" if float(v).is_integer() else f"{v:g}")
        low = f"more than {fmt(self.above)}" if self.above is not None else f"from {fmt(self.low)}"
        return f"{kind} {low} to {fmt(self.high)}"

    def parse(self, text: str):
        """The value written as text (an environment variable), or ValueError."""
        text = text.strip()
        if self.type is str:
            return text.upper() if self.upper else text.lower() if self.choices else text
        value = self.type(text)
        return value

    def accepts(self, value) -> bool:
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (self.type is int and not isinstance(value, int)) or math.isnan(value):
                return False
            if self.above is not None and not value > self.above:
                return False
            if self.low is not None and not value >= self.low:
                return False
            return self.high is None or value <= self.high
        if not isinstance(value, self.type):
            return False
        if self.choices and value not in self.choices:
            return False
        return self.check is None or bool(self.check(value))


def option(default, *, help: str, type: type | None = None, **rules) -> Any:
    """A dataclass field holding an option (its type is the default's unless given)."""
    spec = Option(help=help, type=type or default.__class__, **rules)
    return dataclasses.field(default=default, repr=not spec.secret, metadata={"option": spec})


def options_of(cls) -> list[tuple[str, Option, Any]]:
    """(field name, Option, default) of every option of an options dataclass, in order."""
    return [(f.name, f.metadata["option"], f.default) for f in dataclasses.fields(cls) if "option" in f.metadata]


def check_options(instance) -> None:
    """ValueError naming the first field whose value its Option does not accept (None is
    accepted where it is the default: an option left unset)."""
    for name, spec, default in options_of(type(instance)):
        value = getattr(instance, name)
        if value is None and default is None:
            continue
        if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(instance, name, float(value))
            value = float(value)
        if not spec.accepts(value):
            shown = "<hidden>" if spec.secret else repr(value)
            raise ValueError(f"{name}={shown} is not accepted: expected {spec.describe()}")


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline decodes photos and finds faces (the service's "detection" settings).

    The Haar options are the cascade's (emotionlib/detectors/haar.py says how they were
    chosen: benchmarks/detection.py); YuNet has no options of its own here.
    """
    detector: str = option("haar", choices=DETECTORS, help=(
        "face detector: `haar` (OpenCV's cascade) or `yunet` (more faces found, faster; its model ships "
        "in `emotionlib/detectors/models/`, Apache-2.0, see NOTICE there)"))
    detect_max_side: int = option(1280, low=64, high=16_384, help=(
        "images are downscaled to this longer side for detection (boxes are reported in the full image)"))
    video_detect_max_side: int = option(640, low=64, high=16_384, help=(
        "video frames are downscaled to this longer side when the whole frame is searched for faces, so faces "
        "from 24 px there are found: 48 px of a 1280x720 frame, 144 px of 4K (the photos' "
        "`EMOTION_DETECT_MAX_SIDE` does not apply to video)"))
    video_detect_every_s: float = option(0.5, low=0.0, high=60.0, help=(
        "seconds of video between searches of the whole frame; the frames in between are searched only around "
        "the faces being tracked (`0`: every frame whole)"))
    max_faces_per_image: int = option(100, low=1, high=1000, old_names=("EMOTION_MAX_FACES",), help=(
        "faces returned per image (the largest), and most `boxes` per request"))
    min_detection_confidence: float = option(0.0, low=0.0, high=1.0, help=(
        "default of the `min_detection_confidence` field: detected faces the detector scores lower are dropped"))
    max_image_pixels: int = option(DEFAULT_MAX_PIXELS, low=1, high=500_000_000, old_names=("EMOTION_MAX_PIXELS",),
                                   help="decoded image size limit (413 `image_too_large` above; from the header)")
    haar_min_face_size: int = option(24, low=8, high=4096, old_names=("EMOTION_MIN_FACE_SIZE",), help=(
        "Haar: smallest face, in pixels of the detection image"))
    haar_min_neighbors: int = option(6, low=0, high=50, old_names=("EMOTION_MIN_NEIGHBORS",), help=(
        "Haar: overlapping cascade hits a face needs"))
    haar_large_face_neighbors: int = option(3, low=0, high=50, old_names=("EMOTION_LARGE_FACE_NEIGHBORS",), help=(
        "Haar: when no box reaches `EMOTION_HAAR_MIN_NEIGHBORS`, boxes of at least half the image's shorter side "
        "need only this many (same scan; set it to `EMOTION_HAAR_MIN_NEIGHBORS` to turn it off)"))
    haar_scale_factor: float = option(1.1, above=1.0, high=2.0, old_names=("EMOTION_SCALE_FACTOR",), help=(
        "Haar: step between the cascade's window sizes"))

    def __post_init__(self):
        check_options(self)
