"""emotionlib.video.tracking on boxes alone: crossing, leaving and coming back, gaps, sizes;
the per-track sums; and tests/clips.py's identity-switch count itself."""
from __future__ import annotations

import pytest

from emotionlib.geometry import Box, iou
from emotionlib.labels import EMOTIONS
from emotionlib.video.tracking import Tracker, TrackStats
from tests.clips import identity_switches, three_people


def box(cx: float, cy: float, side: int = 100) -> Box:
    return Box(round(cx - side / 2), round(cy - side / 2), side, side)


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0


def test_two_people_crossing_keep_their_ids_through_an_occlusion():
    """A moves right, B left, 40 px apart vertically; while they overlap only B (in front) is
    seen. Matching by last position alone would swap them afterwards."""
    tracker = Tracker(1280, 720)
    seen = {"A": set(), "B": set()}
    for step in range(20):
        t = step * 0.5
        ax, bx = 100 + 45 * step, 1000 - 45 * step
        boxes = {"B": box(bx, 340)}
        if abs(ax - bx) > 120:  # A hidden behind B while they overlap
            boxes["A"] = box(ax, 300)
        names = sorted(boxes)
        for name, track in zip(names, tracker.update(t, [boxes[n] for n in names])):
            seen[name].add(track)
    assert seen == {"A": {1}, "B": {2}} or seen == {"A": {2}, "B": {1}}


def test_leaving_and_coming_back_within_the_gap_keeps_the_id():
    tracker = Tracker(1280, 720, max_gap_s=3.0)
    ids = [tracker.update(t * 0.5, [box(1100 + 10 * t, 400)])[0] for t in range(10)]
    assert tracker.update(7.0, []) == []  # out of the frame for 2.5 s
    ids += [tracker.update(7.5, [box(1210, 400)])[0]]
    assert set(ids) == {1}


def test_a_face_after_the_gap_is_a_new_person():
    tracker = Tracker(1280, 720, max_gap_s=1.0)
    assert tracker.update(0.0, [box(500, 400)]) == [1]
    assert tracker.update(2.0, [box(500, 400)]) == [2]


def test_a_face_of_another_size_is_another_person():
    tracker = Tracker(1280, 720)
    assert tracker.update(0.0, [box(500, 400, 100)]) == [1]
    assert tracker.update(0.5, [box(500, 400, 300)]) == [2]
    assert tracker.update(1.0, [box(505, 400, 100), box(500, 400, 290)]) == [1, 2]


def test_far_jump_is_a_new_track_and_new_faces_get_new_ids():
    tracker = Tracker(1280, 720)
    assert tracker.update(0.0, [box(100, 100), box(1000, 600)]) == [1, 2]
    assert tracker.update(0.5, [box(600, 100), box(1005, 600), box(300, 500)]) == [3, 2, 4]


def scores(top: str, p: float = 0.7) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {name: p if name == top else rest for name in EMOTIONS}


def test_stats_summarise_each_track():
    stats = TrackStats()
    stats.add(1, 0.0, scores("happy", 0.9))
    stats.add(1, 0.5, scores("happy", 0.9))
    stats.add(1, 1.0, scores("sad", 0.6))
    stats.add(2, 0.5, scores("angry"))
    one, two = stats.summaries()
    assert (one.track_id, one.first_t, one.last_t, one.frames_seen) == (1, 0.0, 1.0, 3)
    assert one.dominant_emotion == "happy"
    assert one.frame_shares["happy"] == pytest.approx(2 / 3) and one.frame_shares["sad"] == pytest.approx(1 / 3)
    assert one.mean_scores["happy"] == pytest.approx((0.9 + 0.9 + 0.08) / 3)
    assert sum(one.mean_scores.values()) == pytest.approx(1.0)
    assert (two.track_id, two.frames_seen, two.dominant_emotion) == (2, 1, "angry")
    assert set(one.to_dict()) == {"track_id", "first_t", "last_t", "frames_seen", "dominant_emotion",
                                  "mean_scores", "frame_shares"}


def test_identity_switch_count_sees_swaps_and_new_ids():
    """The measure the video tests rely on: the true boxes answered with ids that swap at
    t = 2 and a new id at t = 3 give 2 + 1 switches."""
    scenario = three_people(30.0, 1280, 720)
    frames = []
    for t in (0.0, 1.0, 2.0, 3.0):
        truth = scenario.faces_at(t)
        ids = {"A": 1, "B": 2, "C": 3}
        if t >= 2.0:
            ids = {"A": 2, "B": 1, "C": 3 if t < 3.0 else 7}
        frames.append({"t": t, "faces": [{"bounding_box": b.as_list(), "track_id": ids[n]}
                                         for n, b in truth.items()]})
    result = identity_switches(frames, scenario)
    assert result.id_switches == 3
    assert result.track_ids == 4 and result.missed == 0 and result.unmatched == 0
    assert result.ids_per_person == {"A": [1, 2], "B": [1, 2], "C": [3, 7]}
