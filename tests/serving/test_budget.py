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
        highest = 0

        async def watch():
            nonlocal highest
            while True:
                highest = max(highest, photos.budget.in_use)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        answers = await asyncio.gather(*(photos.annotated(data, as_json=as_json) for as_json in (False, True, False)))
        watcher.cancel()
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
