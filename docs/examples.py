"""Make the README's example images against a running service (default http://localhost:9000):

    python docs/examples.py                # writes docs/group.jpg and docs/group-annotated.jpg

The group photo is composed from the two test portraits (tests/fixtures), mirrored and
scaled, as the tests compose theirs; the annotated one is what POST /emotion/annotate returns.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import httpx
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures"


def head_and_shoulders(portrait: Image.Image, box: tuple[int, int, int, int], height: int) -> Image.Image:
    """The part of a portrait around its face box (x, y, w, h), scaled to the given height."""
    x, y, w, h = box
    part = portrait.crop((max(0, x - w), max(0, y - h // 3), min(portrait.width, x + 2 * w),
                          min(portrait.height, y + 2 * h)))
    return part.resize((round(part.width * height / part.height), height))


def mirrored(box, width):
    x, y, w, h = box
    return width - x - w, y, w, h


def group_photo() -> Image.Image:
    obama = Image.open(FIXTURES / "obama.jpg").convert("RGB")
    biden = Image.open(FIXTURES / "biden.jpg").convert("RGB")
    obama_face, biden_face = (342, 95, 300, 300), (430, 210, 316, 315)  # as the detector finds them
    people = [
        head_and_shoulders(obama, obama_face, 400),
        head_and_shoulders(ImageOps.mirror(biden), mirrored(biden_face, biden.width), 330),
        head_and_shoulders(ImageOps.mirror(obama), mirrored(obama_face, obama.width), 260),
        head_and_shoulders(biden, biden_face, 380),
    ]
    canvas = Image.new("RGB", (sum(p.width for p in people), 440), (236, 232, 224))
    x = 0
    for person in people:
        canvas.paste(person, (x, canvas.height - person.height))
        x += person.width
    return canvas


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:9000")
    args = parser.parse_args(argv)
    buffer = io.BytesIO()
    group_photo().save(buffer, "JPEG", quality=85)
    (HERE / "group.jpg").write_bytes(buffer.getvalue())
    response = httpx.post(f"{args.url}/emotion/annotate", files={"image": ("group.jpg", buffer.getvalue())},
                          timeout=120)
    response.raise_for_status()
    (HERE / "group-annotated.jpg").write_bytes(response.content)
    print(response.headers["X-Emotion-Faces"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
