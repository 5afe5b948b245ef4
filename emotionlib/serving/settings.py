"""Every ``EMOTION_*`` setting, parsed and validated once, as one frozen object.

``Settings.from_env()`` reads the environment when the service starts; a bad value stops
the service with a message that names the variable and the values it accepts. The
object is passed down to the code that needs it: no other module reads ``EMOTION_*``
variables. To add a setting: add a field with its default and a ``_Spec`` line below.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Mapping

ENV_PREFIX = "EMOTION_"


class SettingsError(ValueError):
    """An EMOTION_* variable with a value the service does not accept."""


@dataclass(frozen=True)
class Settings:
    # HTTP and limits
    max_upload_mb: float = 10.0
    max_pixels: int = 50_000_000
    max_concurrency: int = 32
    decode_concurrency: int = 4
    api_workers: int = 1
    max_batch_images: int = 16
    max_batch_upload_mb: float = 50.0
    max_uploads: int = 64
    upload_timeout_s: float = 30.0
    upload_min_kib_s: float = 16.0
    upload_grace_s: float = 5.0
    # access: None = open; else every request but probes and metrics needs this bearer key
    api_key: str | None = dataclasses.field(default=None, repr=False)
    # detection
    detector: str = "haar"
    detect_threads: int = 0
    detect_max_side: int = 1280
    min_face_size: int = 24
    min_neighbors: int = 6
    large_face_neighbors: int = 3
    scale_factor: float = 1.1
    max_faces: int = 100
    min_detection_confidence: float = 0.0
    # model worker
    model_tag: str = "emotion_classifier:latest"
    max_batch_size: int = 64
    max_latency_ms: int = 8000
    model_threads: int = 0
    model_timeout_s: float = 10.0
    log_level: str = "INFO"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_batch_upload_bytes(self) -> int:
        return int(self.max_batch_upload_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from EMOTION_* variables (defaults for the unset ones).

        Raises SettingsError naming the variable and the accepted values. Unknown
        EMOTION_* variables are refused too: a typo must not silently keep a default.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            name = env_name(field.name)
            raw = environ.get(name)
            if raw is None:
                continue
            spec = _SPECS[field.name]
            try:
                value = spec.parse(raw.strip())
            except (TypeError, ValueError):
                value = None
            if value is None or not spec.check(value):
                shown = "<hidden>" if field.name in SECRETS else repr(raw)
                raise SettingsError(f"{name}={shown} is not accepted: expected {spec.accepted}")
            values[field.name] = value
        known = {env_name(f.name) for f in dataclasses.fields(cls)} | EXTRA_VARIABLES
        unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
        if unknown:
            raise SettingsError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True)
class _Spec:
    parse: Callable[[str], object]
    check: Callable[[object], bool]
    accepted: str


def _int(low: int, high: int) -> _Spec:
    return _Spec(int, lambda v: low <= v <= high, f"an integer from {low:,} to {high:,}")


def _float(low: float, high: float, strict_low: bool = False) -> _Spec:
    check = (lambda v: low < v <= high) if strict_low else (lambda v: low <= v <= high)
    bound = f"more than {low:g}" if strict_low else f"from {low:g}"
    return _Spec(float, check, f"a number {bound} to {high:g}")


def _choice(*options: str, upper: bool = False) -> _Spec:
    norm = (lambda s: s.upper()) if upper else (lambda s: s.lower())
    return _Spec(norm, lambda v: v in options, "one of " + ", ".join(options))


_SPECS: dict[str, _Spec] = {
    "max_upload_mb": _float(0, 1024, strict_low=True),
    "max_pixels": _int(1, 500_000_000),
    "max_concurrency": _int(1, 10_000),
    "decode_concurrency": _int(1, 256),
    "api_workers": _int(1, 64),
    "max_batch_images": _int(1, 1000),
    "max_batch_upload_mb": _float(0, 4096, strict_low=True),
    "max_uploads": _int(1, 10_000),
    # below the 60 s request timeout of the service (service.py), so a slow upload gets 408
    "upload_timeout_s": _float(0, 50, strict_low=True),
    "upload_min_kib_s": _float(0, 1_000_000, strict_low=True),
    "upload_grace_s": _float(0, 50),
    "api_key": _Spec(str, lambda v: len(v) >= 16 and v.isascii() and v.isprintable() and " " not in v,
                     "a key of at least 16 printable ASCII characters without spaces"),
    "detector": _choice("haar", "yunet"),
    "detect_threads": _int(0, 256),
    "detect_max_side": _int(64, 16_384),
    "min_face_size": _int(8, 4096),
    "min_neighbors": _int(0, 50),
    "large_face_neighbors": _int(0, 50),
    "scale_factor": _float(1.0, 2.0, strict_low=True),
    "max_faces": _int(1, 1000),
    "min_detection_confidence": _float(0.0, 1.0),
    "model_tag": _Spec(str, lambda v: bool(v) and " " not in v, "a model tag such as emotion_classifier:latest"),
    "max_batch_size": _int(1, 1024),
    "max_latency_ms": _int(1, 600_000),
    "model_threads": _int(0, 256),
    "model_timeout_s": _float(0, 3600, strict_low=True),
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True),
}

# Settings whose values never appear in messages or logs.
SECRETS = {"api_key"}

# EMOTION_* variables that are not settings of the service (read by tests and tools).
EXTRA_VARIABLES: set[str] = set()

assert set(_SPECS) == {f.name for f in dataclasses.fields(Settings)}, "every setting needs a _Spec"
