"""Every ``EMOTION_*`` setting of the service, each defined once, in groups, read and checked once.

A setting is a field of one group (detection: the pipeline's own emotionlib.PipelineOptions;
limits; model; access; service), declared with emotionlib.options.option: its type, range,
default and help. Its variable is ``EMOTION_`` + the field's name in capitals.
``Settings.from_env()`` reads them when the service starts; a bad value, an unknown
``EMOTION_*`` name or a setting given under its old and new name at once stops the service
with a message that names the variable and what it accepts. Old names (``old_names``) still
work, with a warning. No other module reads ``EMOTION_*`` variables.

The README's configuration table is made from these definitions:

    python -m emotionlib.serving.settings               # print it
    python -m emotionlib.serving.settings --write README.md
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from emotionlib.classifier import DEFAULT_MODEL_TAG
from emotionlib.options import Option, PipelineOptions, check_options, option, options_of
from emotionlib.video.reader import DEFAULT_MAX_PIXELS as DEFAULT_MAX_VIDEO_PIXELS
from emotionlib.video.reader import VideoLimits

ENV_PREFIX = "EMOTION_"
# Room for the text fields and the multipart framing besides a video of EMOTION_MAX_VIDEO_MB.
FORM_FIELDS_BYTES = 64 * 1024


class SettingsError(ValueError):
    """An EMOTION_* variable with a value the service does not accept."""


class RenamedSetting(FutureWarning):
    """An EMOTION_* variable given under its old name."""


@dataclass(frozen=True)
class Limits:
    """What one API worker accepts and how much it does at once."""
    max_upload_mb: float = option(10.0, above=0, high=1024, help=(
        "request body limit in MiB (413 above it); also each photo of `/emotion/batch`"))
    max_batch_upload_mb: float = option(50.0, above=0, high=4096, help="request body limit of `/emotion/batch` in MiB")
    max_batch_images: int = option(16, low=1, high=1000, help="most photos per `/emotion/batch` request")
    max_uploads_in_progress: int = option(64, low=1, high=10_000, old_names=("EMOTION_MAX_UPLOADS",), help=(
        "request bodies arriving at once per worker (503 `overloaded` above)"))
    max_requests_in_progress: int = option(32, low=1, high=10_000, old_names=("EMOTION_MAX_CONCURRENCY",), help=(
        "requests processed at once per worker, counted from the end of their upload (503 `overloaded` above)"))
    max_decodes_in_progress: int = option(4, low=1, high=256, old_names=("EMOTION_DECODE_CONCURRENCY",), help=(
        "images decoded and searched for faces at once per worker (threads; their memory is "
        "`EMOTION_MAX_IMAGE_MEMORY_MB`'s)"))
    max_image_memory_mb: float = option(1024.0, above=0, high=1_048_576, help=(
        "memory for the decoded photos and video frames of the requests in progress per worker, in MiB; one "
        "image of `EMOTION_MAX_IMAGE_PIXELS` must fit (494 MiB at the default); a photo waits up to 30 s for "
        "room, then 503 `overloaded` (what each reserves: docs/operations.md, Memory bound)"))
    max_upload_mb_in_progress: float = option(256.0, above=0, high=1_048_576, help=(
        "request bodies held at once per worker, arriving or being processed, in MiB, clips in their temporary "
        "files too (503 `overloaded` above); at least `EMOTION_MAX_BATCH_UPLOAD_MB` and `EMOTION_MAX_VIDEO_MB`"))
    # below the 60 s request timeout of the service (service.py), so a slow upload gets 408
    upload_timeout_s: float = option(30.0, above=0, high=50, help=(
        "the whole body must arrive within this many seconds (at most 50: below the 60 s request timeout)"))
    upload_min_kib_s: float = option(16.0, above=0, high=1_000_000, help=(
        "... and at this average rate or faster once the grace time is over (408 `incomplete_upload` otherwise)"))
    upload_grace_s: float = option(5.0, low=0, high=50, help="seconds before the minimum upload rate applies")
    max_video_mb: float = option(100.0, above=0, high=16_384, help=(
        "video file limit in MiB (413 `upload_too_large` above); uploads are streamed into private temporary files, "
        "counted in `EMOTION_MAX_UPLOAD_MB_IN_PROGRESS` (so at most that much disk)"))
    max_video_seconds: float = option(60.0, above=0, high=86_400, help=(
        "longest clip `/emotion/video` and `/emotion/video/annotate` take, in seconds of video (413 "
        "`video_too_long` above, naming the task endpoint)"))
    max_video_frames: int = option(900, low=1, high=10_000_000, help=(
        "most frames one synchronous request analyses (length times the analysed rate; 413 `video_too_long` "
        "above, naming the task endpoint), so it ends within the 60 s request timeout"))
    max_video_task_seconds: float = option(3600.0, above=0, high=86_400, help=(
        "longest clip `/emotion/video/task/submit` takes"))
    max_video_pixels: int = option(DEFAULT_MAX_VIDEO_PIXELS, low=1, high=100_000_000, help=(
        "pixels per video frame (413 `frame_too_large`; default 3840x2160)"))
    max_videos_in_progress: int = option(2, low=1, high=256, help=(
        "clips analysed at once per worker: a synchronous request over it gets 503 `overloaded`, a task waits "
        "for its turn"))

    def __post_init__(self):
        check_options(self)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_batch_upload_bytes(self) -> int:
        return int(self.max_batch_upload_mb * 1024 * 1024)

    @property
    def max_image_memory_bytes(self) -> int:
        return int(self.max_image_memory_mb * 1024 * 1024)

    @property
    def max_upload_bytes_in_progress(self) -> int:
        return int(self.max_upload_mb_in_progress * 1024 * 1024)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * 1024 * 1024)

    @property
    def max_video_upload_bytes(self) -> int:
        """The body limit of the video routes: a clip of max_video_bytes and its form fields."""
        return self.max_video_bytes + FORM_FIELDS_BYTES

    def video_limits(self, task: bool = False) -> VideoLimits:
        """What the video reader accepts from a synchronous request, or from a task."""
        if task:
            return VideoLimits(self.max_video_bytes, self.max_video_task_seconds, self.max_video_pixels)
        return VideoLimits(self.max_video_bytes, self.max_video_seconds, self.max_video_pixels, self.max_video_frames)


@dataclass(frozen=True)
class Model:
    """The model worker: which model, its threads, and how it batches the faces of concurrent requests."""
    model_tag: str = option(DEFAULT_MODEL_TAG, check=lambda v: bool(v) and " " not in v,
                            accepted="a model tag such as emotion_classifier:latest",
                            help="model served from the store")
    model_max_batch_faces: int = option(64, low=1, high=1024, old_names=("EMOTION_MAX_BATCH_SIZE",), help=(
        "most faces per model call (a call runs at once when the model is idle; calls arriving while it is "
        "busy share the next one)"))
    model_max_wait_ms: int = option(8000, low=1, high=600_000, old_names=("EMOTION_MAX_LATENCY_MS",), help=(
        "longest a request's faces may wait for the model (keep it under `EMOTION_MODEL_TIMEOUT_S`); past it the "
        "request gets 503 `model_busy`"))
    model_timeout_s: float = option(10.0, above=0, high=3600, help=(
        "deadline of a call to the model worker (shorter than the 60 s request timeout); past it the request "
        "gets 503 `model_timeout`"))
    model_threads: int = option(0, low=0, high=256, help="ONNX Runtime threads of the model worker (`0`: one per core)")

    def __post_init__(self):
        check_options(self)


@dataclass(frozen=True)
class Access:
    """Who may call the API."""
    # None = open; else every request but probes, metrics and the page's files needs this bearer key
    api_key: str | None = option(None, type=str, secret=True, check=lambda v: len(v) >= 16 and v.isascii()
                                 and v.isprintable() and " " not in v,
                                 accepted="a key of at least 16 printable ASCII characters without spaces", help=(
                                     "when set, the bearer key every request but probes, metrics and the page's "
                                     "files needs (401 `unauthorized` otherwise)"))

    def __post_init__(self):
        check_options(self)


@dataclass(frozen=True)
class Service:
    """The processes."""
    api_workers: int = option(1, low=1, high=64, help="HTTP worker processes (decoding and detection)")
    detect_threads: int = option(0, low=0, high=256, help=(
        "OpenCV threads per API worker (`0`: one per core); detections of concurrent requests also run in "
        "parallel threads"))
    log_level: str = option("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True, help=(
        "the service's own log level (`bentoml serve --verbose` for BentoML's)"))

    def __post_init__(self):
        check_options(self)


GROUPS: dict[str, type] = {"detection": PipelineOptions, "limits": Limits, "model": Model, "access": Access,
                           "service": Service}


@dataclass(frozen=True)
class Settings:
    detection: PipelineOptions = dataclasses.field(default_factory=PipelineOptions)
    limits: Limits = dataclasses.field(default_factory=Limits)
    model: Model = dataclasses.field(default_factory=Model)
    access: Access = dataclasses.field(default_factory=Access)
    service: Service = dataclasses.field(default_factory=Service)

    def __post_init__(self):
        """The settings that must agree with each other (SettingsError naming them)."""
        from emotionlib.serving.budget import MIB, bytes_needed, clip_bytes_needed

        limits, pixels = self.limits, self.detection.max_image_pixels
        largest = max(bytes_needed(pixels, 1, use, self.detection.detect_max_side) for use in ("faces", "annotate"))
        if limits.max_image_memory_bytes < largest:
            raise SettingsError(f"EMOTION_MAX_IMAGE_MEMORY_MB={limits.max_image_memory_mb:g} is too small for one "
                                f"image of EMOTION_MAX_IMAGE_PIXELS={pixels:,}: it needs at least "
                                f"{largest / MIB:,.0f}")
        clip = clip_bytes_needed(limits.max_video_pixels, 1, False, self.detection.video_detect_max_side)
        if limits.max_image_memory_bytes < clip:
            raise SettingsError(f"EMOTION_MAX_IMAGE_MEMORY_MB={limits.max_image_memory_mb:g} is too small for one "
                                f"clip of EMOTION_MAX_VIDEO_PIXELS={limits.max_video_pixels:,}: it needs at least "
                                f"{clip / MIB:,.0f}")
        bodies = max(limits.max_upload_bytes, limits.max_batch_upload_bytes, limits.max_video_upload_bytes)
        if limits.max_upload_bytes_in_progress < bodies:
            raise SettingsError(f"EMOTION_MAX_UPLOAD_MB_IN_PROGRESS={limits.max_upload_mb_in_progress:g} is smaller "
                                f"than one request body may be ({bodies / MIB:,.2f} MiB: EMOTION_MAX_UPLOAD_MB, "
                                "EMOTION_MAX_BATCH_UPLOAD_MB, EMOTION_MAX_VIDEO_MB and its form fields)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from EMOTION_* variables (defaults for the unset ones); SettingsError
        naming the variable and the accepted values, RenamedSetting warnings for old names."""
        environ = os.environ if environ is None else environ
        groups = {}
        for group, options_class in GROUPS.items():
            values = {}
            for name, spec, _ in options_of(options_class):
                given = [variable for variable in (env_name(name), *spec.old_names) if variable in environ]
                if len(given) > 1:
                    raise SettingsError(f"{' and '.join(given)} are the same setting; set only {env_name(name)}")
                if not given:
                    continue
                variable, raw = given[0], environ[given[0]]
                values[name] = read(variable, raw, spec)  # a bad value stops before any warning
                if variable != env_name(name):
                    warnings.warn(f"{variable} is now called {env_name(name)}; the old name still works for now",
                                  RenamedSetting, stacklevel=2)
            groups[group] = options_class(**values)
        unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known_variables())
        if unknown:
            raise SettingsError(f"unknown setting(s) {unknown}; known: {sorted(known_variables())}")
        return cls(**groups)


def service_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings.from_env() for service.py: a SettingsError becomes BentoML's
    BentoMLConfigException, which BentoML's command line prints as one line (``Error: [serve]
    `serve` failed: EMOTION_...``) with exit status 1, where any other exception at import was
    a 58-line traceback with the message last (``--verbose`` still shows the traceback). A
    Python caller gets the SettingsError as the exception's cause."""
    from bentoml.exceptions import BentoMLConfigException

    try:
        return Settings.from_env(environ)
    except SettingsError as error:
        raise BentoMLConfigException(str(error)) from error


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def read(variable: str, raw: str, spec: Option):
    """The value of a variable, or SettingsError naming it and what it accepts."""
    try:
        value = spec.parse(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not spec.accepts(value):
        shown = "<hidden>" if spec.secret else repr(raw)
        raise SettingsError(f"{variable}={shown} is not accepted: expected {spec.describe()}")
    return value


def every_setting():
    """(group, variable, Option, default) of every setting, in README order."""
    for group, options_class in GROUPS.items():
        for name, spec, default in options_of(options_class):
            yield group, env_name(name), spec, default


# EMOTION_* variables that are not settings of the service (read by tests and tools).
EXTRA_VARIABLES: set[str] = set()


def known_variables() -> set[str]:
    return {v for _, variable, spec, _ in every_setting() for v in (variable, *spec.old_names)} | EXTRA_VARIABLES


# --- the README's configuration table ---------------------------------------------------------
TABLE_START = "<!-- settings table: python -m emotionlib.serving.settings --write README.md -->"
TABLE_END = "<!-- end of settings table -->"
TITLES = {"detection": "Detection and decoding (the pipeline's own options, `emotionlib.PipelineOptions`)",
          "limits": "Limits per API worker", "model": "Model worker and batching", "access": "Access",
          "service": "Processes and logs"}


def _default(spec: Option, default) -> str:
    if default is None:
        return "unset"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


def markdown_table() -> str:
    """The configuration table of the README: one row per setting (its old names in its meaning),
    under a row naming its group."""
    lines = ["| variable | default | accepted | meaning |", "|---|---|---|---|"]
    for group, options_class in GROUPS.items():
        lines.append(f"| **{TITLES[group]}** | | | |")
        for name, spec, default in options_of(options_class):
            renamed = "".join(f" (old name `{old}`, still read with a warning)" for old in spec.old_names)
            lines.append(f"| `{env_name(name)}` | {_default(spec, default)} | {spec.describe()} | "
                         f"{spec.help}{renamed} |")
    return "\n".join(lines)


def with_table(text: str) -> str:
    """``text`` (the README) with the part between the table's markers replaced by markdown_table()."""
    pattern = re.compile(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"no settings table markers in the file: add the lines {TABLE_START!r} and {TABLE_END!r}")
    return pattern.sub(lambda _: f"{TABLE_START}\n\n{markdown_table()}\n\n{TABLE_END}", text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Print the README's configuration table, or write it into a file.")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the table between its markers")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown_table())
        return 0
    args.write.write_text(with_table(args.write.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
