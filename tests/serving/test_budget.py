"""The one memory budget for decoded pixels (emotionlib/serving/budget.py): its bookkeeping,
and its bytes per pixel measured on every PNG and JPEG mode, so the reservations are true."""
from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import threading

import pytest

from emotionlib.errors import EmotionError
from emotionlib.serving.budget import BYTES_PER_PIXEL, MIB, MemoryBudget, bytes_needed
from tests.helpers import ROOT


def test_reservations_wait_their_turn_and_are_given_back():
    async def scenario():
        budget = MemoryBudget(100, wait_s=5)
        first = await budget.reserve(60)
        second = await budget.reserve(40)
        assert budget.in_use == 100
        waiting = [asyncio.create_task(budget.reserve(n)) for n in (70, 10)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in waiting)  # the 10 waits behind the 70: first come, first served
        first.release()
        first.release()  # idempotent
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in waiting)  # 60 free: not enough for the 70
        second.shrink(5)  # 95 free
        await asyncio.sleep(0.05)
        assert all(task.done() for task in waiting) and budget.in_use == 85
        for task in waiting:
            task.result().release()
        second.release()
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_a_photo_that_waits_too_long_is_refused_and_leaves_nothing_behind():
    async def scenario():
        budget = MemoryBudget(100, wait_s=0.1)
        held = await budget.reserve(90)
        with pytest.raises(EmotionError) as info:
            await budget.reserve(20, "a 10x2 photo")
        assert info.value.code == "overloaded" and "a 10x2 photo" in info.value.message
        cancelled = asyncio.create_task(budget.reserve(50))
        await asyncio.sleep(0.02)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert not budget._waiting and budget.in_use == 90
        held.release()
        assert budget.in_use == 0
        with pytest.raises(ValueError):  # more than the whole budget: the settings never allow it
            await budget.reserve(101)

    asyncio.run(scenario())


def test_an_answer_holds_its_reservation_until_it_is_gone_from_any_thread():
    class Answer:
        pass

    async def scenario():
        budget = MemoryBudget(100, wait_s=5)
        reservation = await budget.reserve(80)
        reservation.shrink(30)
        answer = Answer()
        reservation.hold_until_gone(answer)
        assert budget.in_use == 30
        del answer
        gc.collect()
        assert budget.in_use == 0
        other = await budget.reserve(70)
        thread = threading.Thread(target=other.release)  # e.g. a response collected in a thread
        thread.start()
        thread.join()
        await asyncio.sleep(0.01)  # handed to the event loop
        assert budget.in_use == 0

    asyncio.run(scenario())


# The cases run in one fresh process with the service's allocator settings (freed buffers go
# back to the system at once): the peak resident memory of each (VmHWM, reset before it) above
# the memory before it. Sizes: below EMOTION_DETECT_MAX_SIDE, above it, and large.
MEASURE = r"""
import json, random, sys, io
import numpy as np
from PIL import Image
from emotionlib import render
from emotionlib.pipeline import EmotionPipeline
from emotionlib.serving import patches
from emotionlib.serving.memory import libc
from emotionlib.serving.photos import json_with_image
from tests.fuzzing import png_image

patches.tune_allocator()

def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))

def jpeg(SIDE, mode, colour, orientation=1):
    image, buffer = Image.new(mode, (SIDE, SIDE), colour), io.BytesIO()
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()

def images(SIDE):
    noise = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG", compress_level=1)
    return {
        "gray": png_image(SIDE, SIDE, 0), "rgb": png_image(SIDE, SIDE, 2), "rgba": png_image(SIDE, SIDE, 6),
        "gray+alpha": png_image(SIDE, SIDE, 4), "gray16": png_image(SIDE, SIDE, 0, 16),
        "gray16-random": png_image(SIDE, SIDE, 0, 16, rng=random.Random(0)), "rgb16": png_image(SIDE, SIDE, 2, 16),
        "palette": png_image(SIDE, SIDE, 3), "1-bit": png_image(SIDE, SIDE, 0, 1), "rgb-noise": buffer.getvalue(),
        "jpeg": jpeg(SIDE, "RGB", (120, 130, 140)), "jpeg-gray": jpeg(SIDE, "L", 90),
        "jpeg-cmyk": jpeg(SIDE, "CMYK", (1, 2, 3, 4)), "jpeg-turned": jpeg(SIDE, "RGB", (120, 130, 140), 6),
    }

pipeline = EmotionPipeline(input_size=48)
pipeline.locate(png_image(2000, 2000, 2, rng=random.Random(1)))  # the detector's own buffers, at their largest

def annotate(data, side):
    faces = [{"bounding_box": [0, 0, side, side], "emotion": "happy", "confidence": 0.5}] + [
        {"bounding_box": [40 * i, 40 * i, 200, 200], "emotion": "sad", "confidence": 0.25} for i in range(30)]
    located = pipeline.locate(data, keep_image=True)
    fmt = render.output_format(data)
    image, located = located.image, None
    body = render.annotate(image, faces, fmt, True)
    del image
    return json_with_image(faces, body, render.MEDIA_TYPES[fmt])

for side in map(int, sys.argv[1:]):
    for name, data in images(side).items():
        for use, step in (("faces", lambda d: pipeline.locate(d)), ("annotate", lambda d: annotate(d, side))):
            libc().malloc_trim(0)
            open("/proc/self/clear_refs", "w").write("5")
            before = status("VmRSS")
            result = step(data)
            peak = status("VmHWM") - before
            del result
            print(json.dumps({"image": name, "side": side, "use": use, "peak": peak}))
"""


SIDES = (1200, 1600, 3000)
DETECT_MAX_SIDE = 1280  # the default the measurement runs with


@pytest.fixture(scope="module")
def measured():
    run = subprocess.run([sys.executable, "-c", MEASURE, *map(str, SIDES)], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_reservations_cover_the_measured_peak_of_every_mode(measured):
    """Every mode (16-bit, alpha, palettes, CMYK, an EXIF-turned JPEG, incompressible noise), at
    sizes below and above the detection size, stays within its reservation; and the largest
    images come near the per-pixel part, so the measurement sees the real work."""
    assert len(measured) == 14 * 2 * len(SIDES)
    over = [(m["image"], m["side"], m["use"], round((m["peak"] - bytes_needed(m["side"], m["side"], m["use"],
                                                                                DETECT_MAX_SIDE)) / MIB, 1))
            for m in measured]
    assert [case for case in over if case[3] > 0] == [], over
    for use, per_pixel in BYTES_PER_PIXEL.items():
        largest = max(m["peak"] / SIDES[-1] ** 2 for m in measured if m["use"] == use and m["side"] == SIDES[-1])
        assert per_pixel - 1.5 <= largest <= per_pixel, (use, largest)


# --- the budget in the endpoints' flow (emotionlib/serving/photos.py), with the bundled model ---
@pytest.fixture(scope="module")
def pipeline():
    from emotionlib import EmotionPipeline

    return EmotionPipeline.from_model(threads=1)


def photos_with(pipeline, capacity: int, wait_s: float = 30):
    import anyio

    from emotionlib.serving.photos import ModelWorker, Photos

    async def classify(faces):
        return await anyio.to_thread.run_sync(pipeline.classify, faces)

    return Photos(pipeline, ModelWorker(classify, 30), 4, MemoryBudget(capacity, wait_s))


async def highest_in_use(budget: MemoryBudget, *work):
    """The results of the awaitables, run at once, and the most of the budget in use meanwhile."""
    highest = 0

    async def watch():
        nonlocal highest
        while True:
            highest = max(highest, budget.in_use)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        return await asyncio.gather(*work), highest
    finally:
        watcher.cancel()


def photo_bytes(side: int) -> bytes:
    from PIL import Image

    from tests.helpers import FIXTURES, encode

    return encode(Image.open(FIXTURES / "obama.jpg").convert("RGB").resize((side, side)), "PNG")


def test_annotated_photos_share_the_budget_and_give_it_back(pipeline):
    """Room for one 1000x1000 annotation at a time: three at once all succeed, one after the
    other; each answer keeps only its own size reserved, until it is gone."""
    from emotionlib.serving.fields import annotated_response

    data = photo_bytes(1000)
    one = bytes_needed(1000, 1000, "annotate", pipeline.options.detect_max_side)

    async def scenario():
        photos = photos_with(pipeline, one + one // 2)
        answers, highest = await highest_in_use(photos.budget, *(photos.annotated(data, as_json=as_json)
                                                                 for as_json in (False, True, False)))
        assert one <= highest <= one + one // 2  # never two whole reservations at once
        assert photos.budget.in_use == sum(len(answer.body) for answer in answers)
        body = json.loads(bytes(answers[1].body))
        assert set(body) == {"faces", "media_type", "image"} and body["media_type"] == "image/png"
        assert len(body["faces"]) == 1
        responses = [annotated_response(answer) for answer in answers]  # as the endpoint answers
        del answers
        assert [r.headers["X-Emotion-Face-Count"] for r in responses] == ["1"] * 3
        assert photos.budget.in_use == sum(len(r.body) for r in responses)
        del responses
        gc.collect()
        assert photos.budget.in_use == 0

    asyncio.run(scenario())


def test_batch_photos_wait_for_room_and_a_photo_that_cannot_wait_is_refused(pipeline):
    data = photo_bytes(600)
    one = bytes_needed(600, 600, "faces", pipeline.options.detect_max_side)

    async def scenario():
        photos = photos_with(pipeline, one)  # one photo at a time
        entries = await photos.locate_each([data] * 5, 10 * 1024 * 1024)
        counts = [len(entry.detections) for entry in entries]
        assert counts[0] >= 1 and counts == counts[:1] * 5, entries
        assert photos.budget.in_use == 0
        impatient = photos_with(pipeline, one, wait_s=0.01)
        held = await impatient.budget.reserve(one)
        with pytest.raises(EmotionError) as info:
            await impatient.locate(data)
        assert info.value.code == "overloaded"
        with pytest.raises(EmotionError) as info:  # the batch's answer (503), not a task group's 500
            await impatient.locate_each([data, b"not a photo", data], 10 * 1024 * 1024)
        assert info.value.code == "overloaded"
        held.release()
        assert impatient.budget.in_use == 0

    asyncio.run(scenario())


# --- clips (emotionlib/serving/video.py): their frames in flight in the same budget ---
# Each case in a fresh process, as MEASURE: the three-person clip (tests/clips.py, MPEG-4) at a
# size, through Videos.analysed and Videos.annotated as the endpoints call them (the model in a
# thread); the peak resident memory above the memory before, second run of each (the first
# one grows the detectors' and encoder's buffers of the process once).
MEASURE_CLIPS = r"""
import json, sys, tempfile
from pathlib import Path
import anyio
from emotionlib import EmotionPipeline
from emotionlib.serving import patches
from emotionlib.serving.budget import MemoryBudget
from emotionlib.serving.memory import libc
from emotionlib.serving.video import Videos
from emotionlib.video.reader import VideoLimits
from tests.clips import three_people, write_clip

patches.tune_allocator()

def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))

width, height = int(sys.argv[1]), int(sys.argv[2])
path = Path(tempfile.mkdtemp()) / "clip.mp4"
write_clip(three_people(3.0, width, height), path, fps=6)
pipeline = EmotionPipeline.from_model(threads=1)

async def classify(faces):
    return await anyio.to_thread.run_sync(pipeline.classify, faces)

videos = Videos(pipeline, classify, anyio.CapacityLimiter(4), VideoLimits(), VideoLimits(), 2,
                MemoryBudget(4 * 1024 ** 3))

async def run(use):
    if use == "clip":
        return await videos.analysed(str(path), fps=6)
    return await videos.annotated(str(path), fps=6)

for use in ("clip", "clip_annotate", "clip", "clip_annotate"):
    libc().malloc_trim(0)
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS")
    result = anyio.run(run, use)
    peak = status("VmHWM") - before
    del result
    print(json.dumps({"use": use, "width": width, "height": height, "peak": peak}))
"""
CLIP_SIZES = ((640, 360), (1280, 720))


@pytest.fixture(scope="module")
def measured_clips():
    found = []
    for width, height in CLIP_SIZES:
        run = subprocess.run([sys.executable, "-c", MEASURE_CLIPS, str(width), str(height)], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        found += [json.loads(line) for line in run.stdout.splitlines()][2:]  # the second run of each
    return found


def test_clip_reservations_cover_the_measured_peak(measured_clips):
    """A clip analysed or annotated stays within its reservation at every size, and the
    largest comes near it (the measurement sees the frames in flight)."""
    from emotionlib import PipelineOptions
    from emotionlib.serving.budget import clip_bytes_needed

    side = PipelineOptions().video_detect_max_side
    assert len(measured_clips) == 2 * len(CLIP_SIZES)
    for m in measured_clips:
        reserved = clip_bytes_needed(m["width"], m["height"], m["use"] == "clip_annotate", side)
        assert m["peak"] <= reserved, (m, round(reserved / MIB, 1))
        if (m["width"], m["height"]) == CLIP_SIZES[-1]:
            assert m["peak"] >= 0.6 * reserved, (m, round(reserved / MIB, 1))


def videos_with(pipeline, capacity: int, wait_s: float = 30):
    import anyio

    from emotionlib.serving.video import Videos
    from emotionlib.video.reader import VideoLimits

    async def classify(faces):
        return await anyio.to_thread.run_sync(pipeline.classify, faces)

    return Videos(pipeline, classify, anyio.CapacityLimiter(4), VideoLimits(), VideoLimits(), 2,
                  MemoryBudget(capacity, wait_s))


def test_clips_hold_their_frames_memory_while_analysed_and_give_it_back(pipeline, tmp_path):
    """Room for one annotated 320x240 clip: two at once both end, one after the other; a clip
    that needs more than the whole budget is 413 frame_too_large; a synchronous clip that
    cannot wait is 503 overloaded, a task waits as long as it takes."""
    from emotionlib.serving.budget import clip_bytes_needed
    from tests.videofiles import cv2_clip

    path = tmp_path / "clip.mp4"
    cv2_clip(path, frames=20, fps=10, width=320, height=240)
    side = pipeline.options.video_detect_max_side
    annotated, analysed = (clip_bytes_needed(320, 240, annotate, side) for annotate in (True, False))

    async def scenario():
        videos = videos_with(pipeline, annotated + annotated // 2)
        answers, highest = await highest_in_use(videos.budget, *(videos.annotated(str(path), fps=5) for _ in range(2)))
        assert [answer[1] for answer in answers] == ["video/webm"] * 2
        assert annotated <= highest <= annotated + annotated // 2  # never two at once
        assert videos.budget.in_use == 0

        small = videos_with(pipeline, annotated - 1)
        with pytest.raises(EmotionError) as info:
            await small.annotated(str(path), fps=5)
        assert info.value.code == "frame_too_large" and "POST /emotion/video" in info.value.message
        assert (await small.analysed(str(path), fps=5))["clip"]["frames_analysed"] == 10
        assert small.budget.in_use == 0

        impatient = videos_with(pipeline, analysed, wait_s=0.05)
        held = await impatient.budget.reserve(1)
        with pytest.raises(EmotionError) as info:
            await impatient.analysed(str(path), fps=5)
        assert info.value.code == "overloaded"
        task = asyncio.create_task(impatient.analysed(str(path), fps=5, task=True))
        await asyncio.sleep(0.3)  # six times the wait: still waiting
        assert not task.done()
        held.release()
        assert (await task)["clip"]["frames_analysed"] == 10
        assert impatient.budget.in_use == 0

    asyncio.run(scenario())
