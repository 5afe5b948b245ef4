"""Settings: every EMOTION_* variable validated at start, errors name the variable."""
from __future__ import annotations

import pytest

from emotionlib.serving.settings import Settings, SettingsError


def test_defaults_without_variables():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.max_upload_bytes == 10 * 1024 * 1024


def test_values_are_parsed():
    settings = Settings.from_env({"EMOTION_MAX_UPLOAD_MB": "2.5", "EMOTION_MAX_BATCH_SIZE": " 16 ",
                                  "EMOTION_LOG_LEVEL": "debug"})
    assert settings.max_upload_mb == 2.5
    assert settings.max_batch_size == 16
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize("name, value", [
    ("EMOTION_MAX_BATCH_SIZE", "0"),
    ("EMOTION_MAX_BATCH_SIZE", "lots"),
    ("EMOTION_MAX_UPLOAD_MB", "-1"),
    ("EMOTION_SCALE_FACTOR", "1.0"),
    ("EMOTION_LOG_LEVEL", "chatty"),
    ("EMOTION_MAX_PIXELS", ""),
])
def test_bad_value_names_variable_and_accepted_values(name, value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert "expected" in str(info.value)


def test_unknown_variable_is_refused():
    with pytest.raises(SettingsError, match="EMOTION_MAX_BACTH_SIZE"):
        Settings.from_env({"EMOTION_MAX_BACTH_SIZE": "8"})


def test_upload_limits_and_api_key():
    settings = Settings.from_env({"EMOTION_UPLOAD_TIMEOUT_S": "12", "EMOTION_UPLOAD_MIN_KIB_S": "4",
                                  "EMOTION_UPLOAD_GRACE_S": "0", "EMOTION_MAX_UPLOADS": "8",
                                  "EMOTION_API_KEY": "k" * 24})
    assert (settings.upload_timeout_s, settings.upload_min_kib_s, settings.upload_grace_s) == (12, 4, 0)
    assert settings.max_uploads == 8 and settings.api_key == "k" * 24
    assert "k" * 24 not in repr(settings)


@pytest.mark.parametrize("name, value", [("EMOTION_UPLOAD_TIMEOUT_S", "120"), ("EMOTION_UPLOAD_MIN_KIB_S", "0"),
                                         ("EMOTION_API_KEY", "short"), ("EMOTION_API_KEY", "has a space in it ok")])
def test_bad_upload_and_key_values(name, value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    if name == "EMOTION_API_KEY":
        assert value not in str(info.value)
