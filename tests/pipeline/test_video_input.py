"""Bad video input: every kind gets its InputError with a precise code (a 4xx in the service's
table), never anything else, and no temporary file is left. Also the EMOTION_MAX_VIDEO_* settings."""
from __future__ import annotations

import os

import pytest

from emotionlib.errors import InputError
from emotionlib.serving.errors import error_body, status_of
from emotionlib.serving.settings import Limits, Settings, SettingsError
from emotionlib.video import tempfiles
from emotionlib.video.reader import VideoLimits, VideoReader
from tests.videofiles import CASES, frame, jpeg, made_clips, matroska, video_track


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return made_clips(tmp_path_factory.mktemp("made"))


def _data(case, made) -> bytes:
    return case(made) if callable(case) else case


def _error(data: bytes, limits: VideoLimits | None = None, fps=2.0) -> InputError:
    with pytest.raises(InputError) as info:
        with VideoReader(data, fps, limits) as reader:
            for _ in reader.frames():
                pass
    return info.value


def test_at_least_twenty_kinds():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_precise_4xx(name, made):
    data, status, code = CASES[name]
    error = _error(_data(data, made))
    assert (status_of(error), error.code) == (status, code), error.message
    assert 400 <= status_of(error) < 500 and error_body(error) == {"error": error.message, "code": code, "status": status}
    assert tempfiles.leftovers() == []


def test_a_good_clip_of_each_container_reads(made):
    for kind in ("mp4", "avi", "webm"):
        with VideoReader(made[kind], fps=1000) as reader:
            frames = list(reader.frames())
        assert len(frames) == 20 and frames[0][1].shape == (120, 160, 3), kind
        assert reader.clip.duration == pytest.approx(2.0)


def test_bytes_decide_not_the_name(made, tmp_path):
    path = tmp_path / "holiday.avi"  # an MP4 whatever it is called
    path.write_bytes(made["mp4"])
    with VideoReader(str(path), fps=5) as reader:
        assert reader.clip.container == "mp4" and len(list(reader.frames())) == 10
    wrong = tmp_path / "clip.mp4"
    wrong.write_bytes(jpeg(frame(0)))
    assert _error(str(wrong)).code == "unsupported_video_type"
    assert wrong.exists()  # a caller's file is never removed


@pytest.mark.parametrize("limits, code", [
    (Limits(max_video_mb=0.001).video_limits(), "video_too_large"),
    (VideoLimits(max_seconds=1.5), "video_too_long"),
    (VideoLimits(max_pixels=160 * 120 - 1), "frame_too_large"),
])
def test_limits_are_413(made, limits, code):
    error = _error(made["mp4"], limits)
    assert (status_of(error), error.code) == (413, code)
    assert tempfiles.leftovers() == []


def test_frames_to_analyse_are_limited_by_the_header_and_while_decoding(made):
    """max_frames: the clip's length times the analysed rate (20 frames at 10 frames/s here)."""
    with VideoReader(made["mp4"], fps=1000, limits=VideoLimits(max_frames=20)) as reader:
        assert len(list(reader.frames())) == 20
    error = _error(made["mp4"], VideoLimits(max_frames=19), fps=1000)
    assert error.code == "video_too_long" and "20 frames" in error.message
    with VideoReader(made["mp4"], fps=5, limits=VideoLimits(max_frames=10)) as reader:
        assert len(list(reader.frames())) == 10
    no_duration = matroska([video_track()], [(i * 100, jpeg(frame(i))) for i in range(30)])
    error = _error(no_duration, VideoLimits(max_frames=12), fps=1000)
    assert error.code == "video_too_long" and "13 frames" in error.message
    assert tempfiles.leftovers() == []


def test_a_clip_without_duration_is_stopped_at_the_limit_while_decoding():
    """No duration in the header (a live recording): the length is only known by decoding."""
    data = matroska([video_track()], [(i * 100, jpeg(frame(i))) for i in range(40)])
    error = _error(data, VideoLimits(max_seconds=2))
    assert (status_of(error), error.code) == (413, "video_too_long")
    with VideoReader(data, fps=1000, limits=VideoLimits(max_seconds=5)) as reader:
        assert reader.clip.frame_count is None and len(list(reader.frames())) == 40
        assert reader.clip.duration == pytest.approx(4.0, abs=0.2)
    assert tempfiles.leftovers() == []


@pytest.mark.parametrize("fps", [0, -1, "abc", float("nan"), float("inf"), 5000, True, None, "0.001"])
def test_bad_fps(made, fps):
    error = _error(made["mp4"], fps=fps)
    assert (status_of(error), error.code) == (400, "invalid_fps")


def test_fps_as_text(made):
    with VideoReader(made["mp4"], fps="2.5") as reader:
        assert reader.clip.analysed_fps == 2.5


def test_video_settings_are_validated():
    settings = Settings.from_env({"EMOTION_MAX_VIDEO_MB": "250", "EMOTION_MAX_VIDEO_SECONDS": "30",
                                  "EMOTION_MAX_VIDEO_PIXELS": "2073600", "EMOTION_MAX_VIDEO_FRAMES": "500",
                                  "EMOTION_MAX_VIDEO_TASK_SECONDS": "1200", "EMOTION_MAX_VIDEOS_IN_PROGRESS": "3",
                                  "EMOTION_MAX_UPLOAD_MB_IN_PROGRESS": "256"})  # room for a 250 MiB clip's body
    limits = settings.limits
    assert (limits.max_video_mb, limits.max_video_seconds, limits.max_video_pixels) == (250, 30, 1920 * 1080)
    assert limits.video_limits() == VideoLimits(250 * 2**20, 30, 1920 * 1080, 500)
    assert limits.video_limits(task=True) == VideoLimits(250 * 2**20, 1200, 1920 * 1080, None)
    assert limits.max_videos_in_progress == 3
    for name, value in [("EMOTION_MAX_VIDEO_MB", "0"), ("EMOTION_MAX_VIDEO_SECONDS", "-5"),
                        ("EMOTION_MAX_VIDEO_SECONDS", "100000"), ("EMOTION_MAX_VIDEO_PIXELS", "1.5"),
                        ("EMOTION_MAX_VIDEO_PIXELS", "0"), ("EMOTION_MAX_VIDEO_FRAMES", "0"),
                        ("EMOTION_MAX_VIDEO_TASK_SECONDS", "0"), ("EMOTION_MAX_VIDEOS_IN_PROGRESS", "0")]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


def test_stale_files_of_dead_processes_are_removed(tmp_path):
    folder = tempfiles.folder()
    dead = folder / f"{tempfiles.PREFIX}999999999-5-x.mp4"
    alive = folder / f"{tempfiles._owner(os.getppid())}y.mp4"
    # a process that had our id before us (a restarted container numbers its processes alike)
    reused = folder / f"{tempfiles.PREFIX}{os.getpid()}-1-z.mp4"
    for path in (dead, alive, reused):
        path.write_bytes(b"x")
    try:
        with tempfiles.temporary_file(".mp4") as ours:
            assert tempfiles.remove_stale() >= 2
            assert not dead.exists() and not reused.exists() and alive.exists() and ours.exists()
    finally:
        alive.unlink()
