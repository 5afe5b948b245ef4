"""Settings: every EMOTION_* variable validated at start, errors name the variable."""
from __future__ import annotations

import warnings

import pytest

from emotionlib.serving.settings import RenamedSetting, Settings, SettingsError


def test_defaults_without_variables():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.limits.max_upload_bytes == 10 * 1024 * 1024


def test_values_are_parsed():
    settings = Settings.from_env({"EMOTION_MAX_UPLOAD_MB": "2.5", "EMOTION_MODEL_MAX_BATCH_FACES": " 16 ",
                                  "EMOTION_LOG_LEVEL": "debug"})
    assert settings.limits.max_upload_mb == 2.5
    assert settings.model.model_max_batch_faces == 16
    assert settings.service.log_level == "DEBUG"


@pytest.mark.parametrize("name, value", [
    ("EMOTION_MODEL_MAX_BATCH_FACES", "0"),
    ("EMOTION_MODEL_MAX_BATCH_FACES", "lots"),
    ("EMOTION_MAX_UPLOAD_MB", "-1"),
    ("EMOTION_HAAR_SCALE_FACTOR", "1.0"),
    ("EMOTION_LOG_LEVEL", "chatty"),
    ("EMOTION_MAX_IMAGE_PIXELS", ""),
])
def test_bad_value_names_variable_and_accepted_values(name, value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert "expected" in str(info.value)


def test_unknown_variable_is_refused():
    with pytest.raises(SettingsError, match="EMOTION_MODEL_MAX_BACTH_FACES"):
        Settings.from_env({"EMOTION_MODEL_MAX_BACTH_FACES": "8"})


def test_upload_limits_and_api_key():
    settings = Settings.from_env({"EMOTION_UPLOAD_TIMEOUT_S": "12", "EMOTION_UPLOAD_MIN_KIB_S": "4",
                                  "EMOTION_UPLOAD_GRACE_S": "0", "EMOTION_MAX_UPLOADS_IN_PROGRESS": "8",
                                  "EMOTION_API_KEY": "k" * 24})
    limits = settings.limits
    assert (limits.upload_timeout_s, limits.upload_min_kib_s, limits.upload_grace_s) == (12, 4, 0)
    assert limits.max_uploads_in_progress == 8 and settings.access.api_key == "k" * 24
    assert "k" * 24 not in repr(settings)


@pytest.mark.parametrize("name, value", [("EMOTION_UPLOAD_TIMEOUT_S", "120"), ("EMOTION_UPLOAD_MIN_KIB_S", "0"),
                                         ("EMOTION_API_KEY", "short"), ("EMOTION_API_KEY", "has a space in it ok")])
def test_bad_upload_and_key_values(name, value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    if name == "EMOTION_API_KEY":
        assert value not in str(info.value)


@pytest.mark.parametrize("old, new, value, read", [
    ("EMOTION_MIN_NEIGHBORS", "EMOTION_HAAR_MIN_NEIGHBORS", "4", lambda s: s.detection.haar_min_neighbors == 4),
    ("EMOTION_MAX_BATCH_SIZE", "EMOTION_MODEL_MAX_BATCH_FACES", "16", lambda s: s.model.model_max_batch_faces == 16),
    ("EMOTION_MAX_CONCURRENCY", "EMOTION_MAX_REQUESTS_IN_PROGRESS", "8",
     lambda s: s.limits.max_requests_in_progress == 8),
])
def test_old_names_still_work_with_a_warning(old, new, value, read):
    with pytest.warns(RenamedSetting, match=f"{old} is now called {new}"):
        assert read(Settings.from_env({old: value}))
    with warnings.catch_warnings():  # a refused value: its one-line error, no warning before it
        warnings.simplefilter("error")
        with pytest.raises(SettingsError) as info:
            Settings.from_env({old: "lots"})
    assert f"{old}='lots' is not accepted" in str(info.value)  # named as it was given
    with pytest.raises(SettingsError, match=f"{new} and {old} are the same setting"):
        Settings.from_env({old: value, new: value})


def test_haar_settings_are_named_for_their_detector():
    from emotionlib.serving.settings import every_setting

    names = [variable for group, variable, _, _ in every_setting() if group == "detection"]
    assert {"EMOTION_HAAR_MIN_NEIGHBORS", "EMOTION_HAAR_SCALE_FACTOR", "EMOTION_HAAR_MIN_FACE_SIZE",
            "EMOTION_HAAR_LARGE_FACE_NEIGHBORS"} <= set(names)
    settings = Settings.from_env({"EMOTION_HAAR_MIN_FACE_SIZE": "30", "EMOTION_HAAR_SCALE_FACTOR": "1.2"})
    assert (settings.detection.haar_min_face_size, settings.detection.haar_scale_factor) == (30, 1.2)


def test_every_setting_is_defined_once_with_help_and_a_range():
    from emotionlib.serving.settings import every_setting, known_variables

    settings = list(every_setting())
    variables = [variable for _, variable, _, _ in settings]
    assert len(variables) == len(set(variables)) == 37
    assert len(known_variables()) == len(variables) + sum(len(spec.old_names) for _, _, spec, _ in settings)
    for _, variable, spec, default in settings:
        assert spec.help and spec.describe(), variable
        assert default is None or spec.accepts(default), variable


def test_the_pipeline_checks_its_own_options():
    from emotionlib import PipelineOptions

    assert PipelineOptions(haar_scale_factor=1.2).haar_scale_factor == 1.2
    for bad in ({"detector": "mtcnn"}, {"haar_scale_factor": 1.0}, {"max_faces_per_image": 0},
                {"min_detection_confidence": 1.5}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
            PipelineOptions(**bad)


def test_the_readme_table_is_current():
    """README.md's configuration table is what `python -m emotionlib.serving.settings` writes;
    after changing a setting: `python -m emotionlib.serving.settings --write README.md`."""
    from emotionlib.serving.settings import with_table
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    assert with_table(readme) == readme, "run: python -m emotionlib.serving.settings --write README.md"


def test_detector_setting_is_validated():
    assert Settings.from_env({"EMOTION_DETECTOR": "YuNet"}).detection.detector == "yunet"
    with pytest.raises(SettingsError, match="EMOTION_DETECTOR"):
        Settings.from_env({"EMOTION_DETECTOR": "mtcnn"})


def test_the_bodies_in_progress_and_the_memory_budget_take_one_clip():
    """A clip's body counts in EMOTION_MAX_UPLOAD_MB_IN_PROGRESS (in its temporary file), and its
    frames in flight in EMOTION_MAX_IMAGE_MEMORY_MB: both must take one clip of the limits."""
    from emotionlib.serving.budget import MIB, clip_bytes_needed

    with pytest.raises(SettingsError, match="EMOTION_MAX_UPLOAD_MB_IN_PROGRESS=100 .*EMOTION_MAX_VIDEO_MB"):
        Settings.from_env({"EMOTION_MAX_UPLOAD_MB_IN_PROGRESS": "100"})  # a 100 MiB clip and its fields
    limits = Settings.from_env({"EMOTION_MAX_UPLOAD_MB_IN_PROGRESS": "101"}).limits
    assert limits.max_upload_bytes_in_progress >= limits.max_video_upload_bytes > limits.max_video_bytes
    small = {"EMOTION_MAX_IMAGE_PIXELS": "1000000", "EMOTION_MAX_IMAGE_MEMORY_MB": "100"}
    with pytest.raises(SettingsError, match="EMOTION_MAX_IMAGE_MEMORY_MB=100 .*EMOTION_MAX_VIDEO_PIXELS"):
        Settings.from_env(small)
    settings = Settings.from_env({**small, "EMOTION_MAX_VIDEO_PIXELS": str(1920 * 1080)})
    assert clip_bytes_needed(1920, 1080, False, settings.detection.video_detect_max_side) <= 100 * MIB
