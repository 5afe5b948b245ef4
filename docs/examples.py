"""Make the README's example files and answers from the bundled model (models/), in-process:

    python docs/examples.py          # or: make pictures

writes docs/group.jpg (four faces composed from the two test portraits, mirrored and scaled,
as the tests compose theirs), docs/group-annotated.jpg (what POST /emotion/annotate answers for
it: the same pipeline, drawing and encoder as the service), docs/face-crop.jpg (a face as the
detector frames it, for the detect=false example), docs/clip.mp4 (the README's video examples:
tests/clips.py's three people, 30 s of 640x360 at 4 frames/s; no model needed) and the README's
example answer for tests/fixtures/obama.jpg. Rerun it whenever the bundled model changes;
tests/test_readme.py checks that the files and the README's answer are what it makes.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURES = ROOT / "tests" / "fixtures"
README = ROOT / "README.md"
OBAMA_FACE, BIDEN_FACE = (342, 95, 300, 300), (430, 210, 316, 315)  # as the detector finds them
# The README's example answer, between these lines of its first console block.
ANSWER = re.compile(r'(\$ curl -X POST http://localhost:9000/emotion -F "image=@tests/fixtures/obama.jpg"\n)'
                    r"(.*?)(\n```)", re.S)


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
    people = [
        head_and_shoulders(obama, OBAMA_FACE, 400),
        head_and_shoulders(ImageOps.mirror(biden), mirrored(BIDEN_FACE, biden.width), 330),
        head_and_shoulders(ImageOps.mirror(obama), mirrored(OBAMA_FACE, obama.width), 260),
        head_and_shoulders(biden, BIDEN_FACE, 380),
    ]
    canvas = Image.new("RGB", (sum(p.width for p in people), 440), (236, 232, 224))
    x = 0
    for person in people:
        canvas.paste(person, (x, canvas.height - person.height))
        x += person.width
    return canvas


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def face_crop() -> bytes:
    x, y, w, h = OBAMA_FACE
    return jpeg(Image.open(FIXTURES / "obama.jpg").convert("RGB").crop((x, y, x + w, y + h)), 90)


def annotated(pipeline, photo: bytes) -> tuple[bytes, list[dict]]:
    """What /emotion/annotate answers for the photo: the image and its faces."""
    from emotionlib import render
    from emotionlib.decode import decode_image

    faces = [face.to_dict() for face in pipeline.predict(photo)]
    return render.annotate(decode_image(photo), faces, render.output_format(photo)), faces


def example_answer(faces: list[dict]) -> str:
    """The README's way of showing an /emotion answer: one face object over three lines."""
    lines = []
    for face in faces:
        box, scores = json.dumps(face["bounding_box"]), json.dumps(face["scores"])
        lines.append(f'{{"bounding_box": {box}, "emotion": "{face["emotion"]}", "confidence": '
                     f'{face["confidence"]},\n  "scores": {scores},\n  "detection_confidence": '
                     f'{json.dumps(face["detection_confidence"])}}}')
    return "[" + ",\n ".join(lines) + "]"


def with_answer(readme: str, answer: str) -> str:
    if not ANSWER.search(readme):
        raise SystemExit("README.md has no `curl ... obama.jpg` console block to write the answer into")
    return ANSWER.sub(lambda m: m.group(1) + answer + m.group(3), readme, count=1)


def clip() -> bytes:
    """The README's example clip (the same bytes every time: the frames are drawn, not sampled)."""
    if str(ROOT) not in sys.path:  # run as a script from any folder: tests/ is the repository's
        sys.path.insert(0, str(ROOT))
    from tests.clips import three_people, write_clip

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_clip(three_people(30.0, 640, 360), path, fps=4)
        return path.read_bytes()


def made(pipeline) -> dict[str, bytes]:
    """Every file this script writes, by path relative to the repository, as the model makes them."""
    group = jpeg(group_photo())
    image, _ = annotated(pipeline, group)
    faces = [face.to_dict() for face in pipeline.predict((FIXTURES / "obama.jpg").read_bytes())]
    return {"docs/group.jpg": group, "docs/group-annotated.jpg": image, "docs/face-crop.jpg": face_crop(),
            "docs/clip.mp4": clip(), "README.md": with_answer(README.read_text(), example_answer(faces)).encode()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    from emotionlib import EmotionPipeline

    for path, data in made(EmotionPipeline.from_model()).items():
        (ROOT / path).write_bytes(data)
        print(f"wrote {path} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
