"""Where the faces of a clip's frames are searched (emotionlib/video/locate.py): the whole
frame at the video detection size every EMOTION_VIDEO_DETECT_EVERY_S, only around the
tracked faces in between; what that finds against searching every frame whole."""
from __future__ import annotations

import numpy as np
import pytest

from emotionlib.geometry import Box
from emotionlib.video.locate import FrameLocator, TrackedSearch
from emotionlib.video.reader import VideoReader
from tests.clips import identity_switches, three_people, write_clip


@pytest.fixture(scope="module")
def store(bundled_model_store):
    return bundled_model_store


def pipeline(**options):
    from emotionlib import EmotionPipeline, PipelineOptions

    return EmotionPipeline.from_store(options=PipelineOptions(**options), threads=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s of the three-person scenario in 720p at 12 frames/s (faces 120 px)."""
    path = tmp_path_factory.mktemp("locate") / "three.mp4"
    write_clip(three_people(12.0, 1280, 720), path, fps=12)
    return path


def frames_of(path, fps=1000):
    with VideoReader(str(path), fps) as reader:
        yield from reader.frames()


def test_between_whole_frame_searches_only_the_tracked_faces_are_searched(store, clip):
    locator = FrameLocator(pipeline(), 1280, 720)
    located = [locator.locate(t, rgb) for t, rgb in frames_of(clip)]
    whole = [frame.t for frame in located if frame.whole_frame]
    # every 0.5 s of video: every 6th frame at 12 frames/s
    assert whole == pytest.approx([i / 2 for i in range(24)])
    assert sum(len(frame.detections) for frame in located if not frame.whole_frame) > 300


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_every_frame_finds_what_whole_frame_search_finds_with_no_identity_switch(store, clip, detector):
    scenario = three_people(12.0, 1280, 720)
    tracked = pipeline(detector=detector).video(clip, fps=1000)
    whole = pipeline(detector=detector, video_detect_every_s=0).video(clip, fps=1000)
    a, b = identity_switches(tracked.frames, scenario), identity_switches(whole.frames, scenario)
    assert a.id_switches == b.id_switches == 0 and len(tracked.tracks) == len(whole.tracks) == 3
    assert a.matched >= 0.98 * b.matched and a.unmatched <= b.unmatched + 2, (a, b)
    # the same faces get nearly the same boxes, and the same emotions
    by_time = {f.t: f for f in whole.frames}
    pairs = [(x, max(by_time[f.t].faces, key=lambda y: _iou(x.face.box, y.face.box), default=None))
             for f in tracked.frames for x in f.faces]
    overlaps = [_iou(x.face.box, y.face.box) for x, y in pairs if y is not None]
    same = [x.face.emotion == y.face.emotion for x, y in pairs if y is not None and _iou(x.face.box, y.face.box) > 0.5]
    assert len(same) > 300 and np.median(overlaps) > 0.8 and np.mean(same) > 0.9, (np.median(overlaps), np.mean(same))


def test_at_two_frames_per_second_every_frame_is_searched_whole(store, clip):
    locator = FrameLocator(pipeline(), 1280, 720)
    assert all(locator.locate(t, rgb).whole_frame for t, rgb in frames_of(clip, fps=2))


def test_a_tracked_search_finds_the_face_near_where_it_is_expected(store, clip):
    detector = pipeline().detector
    t, rgb = next(frames_of(clip))
    truth = three_people(12.0, 1280, 720).faces_at(t)
    near = {name: Box(box.x + 20, box.y - 15, box.w, box.h) for name, box in truth.items()}  # moved a little
    found = TrackedSearch(detector, list(near.values()), 100).detect(rgb)
    assert len(found) == len(truth) == 3
    for d in found:
        best = max(truth.values(), key=lambda box: _iou(box, d.box))
        assert _iou(best, d.box) > 0.5
    nowhere = TrackedSearch(detector, [Box(600, 600, 100, 100)], 100).detect(rgb)  # background only
    assert nowhere == []


def test_the_video_detection_size_bounds_the_smallest_face(store, tmp_path):
    """Honest about the default: a 720p frame searched at 640 px finds faces from about 48 px;
    smaller ones need EMOTION_VIDEO_DETECT_MAX_SIDE=1280 (slower)."""
    path = tmp_path / "small.mp4"
    write_clip(three_people(2.0, 1280, 720, face=40), path, fps=4)
    small = pipeline().video(path, fps=2)
    full = pipeline(video_detect_max_side=1280).video(path, fps=2)
    assert sum(len(f.faces) for f in small.frames) == 0
    assert sum(len(f.faces) for f in full.frames) >= 8


def _iou(a, b):
    from emotionlib.geometry import iou

    return iou(a, b)
