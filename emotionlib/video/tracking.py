"""Which face in this frame is which person: stable track ids from boxes over time.

``Tracker.update(t, boxes)`` returns a track id per box. Each track remembers its last box,
when it was seen and its velocity (of the box's centre, pixels per second); its box at time
t is predicted by moving the last box with that velocity, kept inside the frame. A face is
matched to the track whose prediction it overlaps most (IoU) or whose centre is nearest, in
units of the face's size; the gate widens with the time since the track was last seen, and a
face more than twice or less than half the track's size is never matched to it. Pairs are
assigned greedily, cheapest first (a handful of faces per frame: no need for an optimal
assignment). Faces left over start new tracks; a track not seen for ``max_gap_s`` is closed,
so a person who leaves and comes back within that time keeps their id.

The velocity is what keeps two people apart when they cross: at the crossing the boxes
overlap, and the last positions alone would swap them (tests/test_tracking.py fails without
it). Chosen over a tracking library (norfair, motpy, SORT ports, supervision's ByteTrack):
they run a Kalman filter behind the same kind of IoU/distance gate and bring filterpy,
scipy or lap along; with a handful of faces at 2 analysed frames per second, a
constant-velocity step with a gap tolerance is what they amount to here. Measured on generated clips with known tracks (tests/pipeline/test_video.py,
tests/clips.py): 0 identity switches with crossing, leaving and returning faces.

``TrackStats`` adds up each track's emotions for the clip's summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emotionlib.geometry import Box, iou
from emotionlib.labels import EMOTIONS


@dataclass
class _Track:
    id: int
    box: Box
    t: float
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1

    def predicted(self, t: float, width: int, height: int) -> tuple[float, float]:
        """The centre expected at time t, inside the frame."""
        dt = t - self.t
        cx = self.box.x + self.box.w / 2 + self.vx * dt
        cy = self.box.y + self.box.h / 2 + self.vy * dt
        return min(max(cx, 0.0), float(width)), min(max(cy, 0.0), float(height))


class Tracker:
    """Track ids (1, 2, ...) for the faces of successive frames of one clip.

    max_gap_s: a track unseen for longer is closed (a face after that is a new person).
    min_iou: overlap with the prediction that matches regardless of distance. max_shift:
    centre distance, in face sizes, accepted one second after the track was last seen (twice
    that after two seconds, and so on, never under one face size).
    """

    def __init__(self, width: int, height: int, max_gap_s: float = 3.0, min_iou: float = 0.1,
                 max_shift: float = 1.0):
        self.width, self.height = width, height
        self.max_gap_s, self.min_iou, self.max_shift = max_gap_s, min_iou, max_shift
        self.active: list[_Track] = []
        self.next_id = 1

    def expected(self, t: float, seen_within_s: float) -> list[Box]:
        """Where each track seen within ``seen_within_s`` before t is expected at time t: its
        last box moved by its velocity (the centre kept inside the frame)."""
        out = []
        for track in self.active:
            if t - track.t <= seen_within_s:
                cx, cy = track.predicted(t, self.width, self.height)
                out.append(Box(round(cx - track.box.w / 2), round(cy - track.box.h / 2), track.box.w, track.box.h))
        return out

    def update(self, t: float, boxes: Sequence[Box]) -> list[int]:
        self.active = [tr for tr in self.active if t - tr.t <= self.max_gap_s]
        pairs = []
        for ti, track in enumerate(self.active):
            cx, cy = track.predicted(t, self.width, self.height)
            size = max(track.box.w, track.box.h)
            moved = Box(round(cx - track.box.w / 2), round(cy - track.box.h / 2), track.box.w, track.box.h)
            gate = self.max_shift * max(1.0, t - track.t)
            for bi, box in enumerate(boxes):
                ratio = max(box.w, box.h) / size
                if not 0.5 <= ratio <= 2.0:
                    continue
                overlap = iou(moved, box)
                distance = np.hypot(box.x + box.w / 2 - cx, box.y + box.h / 2 - cy) / max(size, box.w, box.h)
                if overlap >= self.min_iou or distance <= gate:
                    pairs.append(((1.0 - overlap) + distance, ti, bi))
        ids = [0] * len(boxes)
        used = set()
        for _, ti, bi in sorted(pairs):
            if ids[bi] or ti in used:
                continue
            used.add(ti)
            ids[bi] = self._move(self.active[ti], t, boxes[bi])
        for bi, box in enumerate(boxes):
            if not ids[bi]:
                self.active.append(_Track(self.next_id, box, t))
                ids[bi] = self.next_id
                self.next_id += 1
        return ids

    @staticmethod
    def _move(track: _Track, t: float, box: Box) -> int:
        dt = t - track.t
        if dt > 0:
            vx = (box.x + box.w / 2 - track.box.x - track.box.w / 2) / dt
            vy = (box.y + box.h / 2 - track.box.y - track.box.h / 2) / dt
            # The first step sets the velocity; later ones are averaged with it (detector jitter).
            weight = 1.0 if track.hits == 1 else 0.5
            track.vx += weight * (vx - track.vx)
            track.vy += weight * (vy - track.vy)
        track.box, track.t, track.hits = box, t, track.hits + 1
        return track.id


@dataclass
class TrackSummary:
    """One person over the clip: first/last time seen, frames seen, the mean of each
    emotion's score, the dominant emotion (highest mean) and the share of frames in which
    each emotion was the top one."""
    track_id: int
    first_t: float
    last_t: float
    frames_seen: int
    mean_scores: dict[str, float]
    dominant_emotion: str
    frame_shares: dict[str, float]

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "first_t": round(self.first_t, 3), "last_t": round(self.last_t, 3),
                "frames_seen": self.frames_seen, "dominant_emotion": self.dominant_emotion,
                "mean_scores": {k: round(v, 4) for k, v in self.mean_scores.items()},
                "frame_shares": {k: round(v, 4) for k, v in self.frame_shares.items()}}


@dataclass
class _Sums:
    first_t: float
    last_t: float
    frames: int = 0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS)))
    tops: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS), np.int64))


class TrackStats:
    """Running sums per track: constant memory per person, whatever the clip's length."""

    def __init__(self) -> None:
        self.sums: dict[int, _Sums] = {}

    def add(self, track_id: int, t: float, scores: dict[str, float]) -> None:
        row = np.array([scores[name] for name in EMOTIONS])
        sums = self.sums.setdefault(track_id, _Sums(t, t))
        sums.last_t, sums.frames = t, sums.frames + 1
        sums.scores += row
        sums.tops[int(row.argmax())] += 1

    def summaries(self) -> list[TrackSummary]:
        out = []
        for track_id, s in sorted(self.sums.items()):
            mean = s.scores / s.frames
            out.append(TrackSummary(track_id, s.first_t, s.last_t, s.frames,
                                    dict(zip(EMOTIONS, map(float, mean))), EMOTIONS[int(mean.argmax())],
                                    dict(zip(EMOTIONS, map(float, s.tops / s.frames)))))
        return out
