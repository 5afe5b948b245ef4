"""Generated clips whose tracks are known, and the identity switches of an answer against them.

    python -m tests.clips clip.mp4                           # 30 s 720p, three people, 24 frames/s
    python -m tests.clips clip.mp4 --seconds 600 --fps 12

The people are the fixture portraits (tests/fixtures, public domain) cut out with a margin
(``face_sprites``), pasted on a smooth background and moved along
keyframed paths (``three_people``): A moves right and B moves left along almost the same
line, so they cross and B hides A's face for a while; C walks out of the right edge and
comes back. Written with cv2.VideoWriter (mp4v in .mp4, MJPG in .avi, VP8 in .webm: what the
bundled FFmpeg encodes). ``Scenario.faces_at(t)`` gives each person's face box where it can
be seen (inside the frame, at most a third covered by someone pasted in front).

``identity_switches(frames, scenario)`` matches each answered face to a visible true face
(IoU >= 0.3) and counts, per person, how often the matched track id changes (CLEAR-MOT's
IDSW), with the number of distinct track ids, matches, misses and faces matching nobody.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from emotionlib.geometry import Box, iou

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Face boxes found on the fixtures at full resolution, widened by 40% for context.
SOURCES = {"obama.jpg": (342, 95, 300, 300), "biden.jpg": (433, 211, 314, 314)}
FOURCCS = {".mp4": "mp4v", ".avi": "MJPG", ".webm": "VP80", ".mkv": "MJPG"}
SPRITE_MARGIN = 1.8  # a sprite is this many face sizes wide (face_sprites' 40% margins)


def face_sprites() -> list[Image.Image]:
    """Each fixture's face with 40% margin on every side (a square 1.8x the face box)."""
    faces = []
    for name, (x, y, w, h) in SOURCES.items():
        image = Image.open(FIXTURES / name).convert("RGB")
        m = int(0.4 * w)
        faces.append(image.crop((x - m, y - m, x + w + m, y + h + m)))
    return faces


@dataclass(frozen=True)
class Person:
    """A sprite moved through keyframes (t seconds, face centre x, y as shares of the frame
    size); before the first and after the last keyframe it stays put."""
    name: str
    sprite: Image.Image
    keyframes: tuple[tuple[float, float, float], ...]

    def centre(self, t: float) -> tuple[float, float]:
        keys = self.keyframes
        if t <= keys[0][0]:
            return keys[0][1:]
        for (t0, x0, y0), (t1, x1, y1) in zip(keys, keys[1:]):
            if t <= t1:
                a = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return keys[-1][1:]


@dataclass(frozen=True)
class Scenario:
    """People in paste order (later ones in front), frame size, face size in pixels, length."""
    people: tuple[Person, ...]
    width: int
    height: int
    face: int
    seconds: float

    def _boxes(self, t: float) -> list[Box]:
        out = []
        for person in self.people:
            cx, cy = person.centre(t)
            x, y = round(cx * self.width - self.face / 2), round(cy * self.height - self.face / 2)
            out.append(Box(x, y, self.face, self.face))
        return out

    def faces_at(self, t: float) -> dict[str, Box]:
        """Each visible person's face box at time t."""
        boxes = self._boxes(t)
        side = round(self.face * SPRITE_MARGIN)
        margin = (side - self.face) // 2
        visible = {}
        for i, (person, box) in enumerate(zip(self.people, boxes)):
            if box.x < 0 or box.y < 0 or box.x + box.w > self.width or box.y + box.h > self.height:
                continue
            covered = 0
            for front in boxes[i + 1:]:
                sprite = Box(front.x - margin, front.y - margin, side, side)
                w = min(box.x + box.w, sprite.x + sprite.w) - max(box.x, sprite.x)
                h = min(box.y + box.h, sprite.y + sprite.h) - max(box.y, sprite.y)
                covered = max(covered, max(0, w) * max(0, h))
            if covered <= box.w * box.h / 3:
                visible[person.name] = box
        return visible

    def frame(self, t: float, background: np.ndarray) -> np.ndarray:
        """The RGB frame at time t."""
        canvas = Image.fromarray(background)
        side = round(self.face * SPRITE_MARGIN)
        margin = (side - self.face) // 2
        for person, box in zip(self.people, self._boxes(t)):
            canvas.paste(person.sprite, (box.x - margin, box.y - margin))
        return np.asarray(canvas)

    def background(self, seed: int = 0) -> np.ndarray:
        """A smooth vertical gradient with broad soft blobs (no edges a face detector likes)."""
        rng = np.random.default_rng(seed)
        blobs = rng.integers(70, 170, (5, 8, 3), dtype=np.uint8)
        soft = np.asarray(Image.fromarray(blobs).resize((self.width, self.height), Image.BICUBIC), np.float32)
        ramp = np.linspace(0.8, 1.1, self.height, dtype=np.float32)[:, None, None]
        return np.clip(soft * ramp, 0, 255).astype(np.uint8)


def three_people(seconds: float = 30.0, width: int = 1280, height: int = 720, face: int | None = None) -> Scenario:
    """A and B cross at 5 s (B in front, hiding A's face for about 1.5 s), C leaves at the
    right edge at 9.5 s and is back at 11.8 s; all keep moving. Times scale with ``seconds``
    (designed at 30 s); the face is ``face`` pixels (default 1/6 of the frame's height)."""
    face = face or max(40, height // 6)
    s = seconds / 30.0
    obama, biden = face_sprites()
    side = round(face * SPRITE_MARGIN)

    def sprite(image: Image.Image, mirror: bool = False, light: float = 1.0) -> Image.Image:
        image = image.transpose(Image.FLIP_LEFT_RIGHT) if mirror else image
        return ImageEnhance.Brightness(image).enhance(light).resize((side, side), Image.LANCZOS)

    out = 1 + 0.75 * side / width  # face centre x at which the whole sprite is off the right edge
    a = Person("A", sprite(obama), ((0, 0.06, 0.28), (10 * s, 0.78, 0.32), (30 * s, 0.66, 0.42)))
    b = Person("B", sprite(biden), ((0, 0.78, 0.36), (10 * s, 0.06, 0.38), (30 * s, 0.22, 0.30)))
    c = Person("C", sprite(obama, mirror=True, light=0.85),
               ((0, 0.84, 0.70), (9.5 * s, 0.92, 0.66), (10.3 * s, out, 0.66), (11.0 * s, out, 0.66),
                (11.8 * s, 0.92, 0.66), (30 * s, 0.86, 0.72)))
    return Scenario((a, c, b), width, height, face, seconds)


def write_clip(scenario: Scenario, path: Path, fps: float = 24.0) -> int:
    """The scenario as a video file (the codec follows the suffix); the number of frames."""
    import cv2

    path = Path(path)
    size = (scenario.width, scenario.height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCCS[path.suffix]), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path.suffix} files here")
    background = scenario.background()
    count = math.ceil(scenario.seconds * fps - 1e-9)
    try:
        for i in range(count):
            writer.write(cv2.cvtColor(scenario.frame(i / fps, background), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return count


@dataclass(frozen=True)
class Identities:
    id_switches: int
    track_ids: int          # distinct track ids answered
    matched: int            # answered faces matched to a visible person
    missed: int             # visible persons with no answered face
    unmatched: int          # answered faces matching nobody
    ids_per_person: dict    # person -> sorted track ids it was given


def identity_switches(frames: Iterable, scenario: Scenario, min_iou: float = 0.3) -> Identities:
    """frames: VideoFrames (or their dicts) in time order."""
    last: dict[str, int] = {}
    given: dict[str, set] = {}
    switches = matched = missed = unmatched = 0
    seen_ids = set()
    for frame in frames:
        t, faces = _frame_parts(frame)
        truth = scenario.faces_at(t)
        seen_ids.update(track for _, track in faces)
        pairs = sorted(((iou(box, true), name, i) for i, (box, _) in enumerate(faces)
                        for name, true in truth.items()), reverse=True)
        used_faces, used_names = set(), set()
        for overlap, name, i in pairs:
            if overlap < min_iou or i in used_faces or name in used_names:
                continue
            used_faces.add(i)
            used_names.add(name)
            track = faces[i][1]
            switches += name in last and last[name] != track
            last[name] = track
            given.setdefault(name, set()).add(track)
        matched += len(used_faces)
        missed += len(truth) - len(used_names)
        unmatched += len(faces) - len(used_faces)
    return Identities(switches, len(seen_ids), matched, missed, unmatched,
                      {name: sorted(ids) for name, ids in sorted(given.items())})


def _frame_parts(frame) -> tuple[float, list[tuple[Box, int]]]:
    if isinstance(frame, dict):
        return frame["t"], [(Box(*f["bounding_box"]), f["track_id"]) for f in frame["faces"]]
    return frame.t, [(f.face.box, f.track_id) for f in frame.faces]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", type=Path, help="file to write (.mp4: mp4v, .avi/.mkv: MJPG, .webm: VP8)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    count = write_clip(three_people(args.seconds, width, height), args.output, args.fps)
    print(f"{args.output}: {count} frames, {args.output.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
