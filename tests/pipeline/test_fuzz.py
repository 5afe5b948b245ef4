"""Seeded fuzzing of the decoder: mutated JPEG/PNG bytes and EXIF blocks decode or give an
InputError (a 4xx), never any other exception (a 500)."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest
from PIL import Image

from emotionlib.decode import decode_picture
from emotionlib.errors import InputError
from emotionlib.serving.errors import status_of
from tests.fuzzing import bombs, exif_block, many_scans, mode_images, mutate, random_exif, small_seeds, with_exif
from tests.helpers import FIXTURES, encode

SEED = 20261126


def seeds() -> list[bytes]:
    return small_seeds(Image.open(FIXTURES / "obama.jpg"))


def check(data: bytes, outcomes: dict) -> None:
    try:
        picture = decode_picture(data, max_pixels=2_000_000, min_side=32)
    except InputError as error:
        assert 400 <= status_of(error) < 500 and error.code and error.message
        outcomes[error.code] = outcomes.get(error.code, 0) + 1
        return
    assert picture.rgb.dtype == np.uint8 and picture.rgb.ndim == 3 and picture.rgb.shape[2] == 3
    outcomes["decoded"] = outcomes.get("decoded", 0) + 1


@pytest.mark.parametrize("cases", [2500])
def test_mutated_images_decode_or_give_4xx(cases):
    rng = random.Random(SEED)
    pool, outcomes = seeds(), {}
    started = time.perf_counter()
    for _ in range(cases):
        check(mutate(rng.choice(pool), rng), outcomes)
    print(f"{cases} mutations in {time.perf_counter() - started:.1f} s: {outcomes}")
    assert outcomes.get("decoded", 0) > cases // 20  # the mutations are not all fatal
    assert len(outcomes) >= 3


def test_broken_exif_blocks_still_decode():
    rng = random.Random(SEED + 1)
    pool, outcomes = seeds(), {}
    for _ in range(1500):
        seed = rng.choice(pool)
        data = with_exif(seed, random_exif(rng), rng)
        if rng.random() < 0.3:
            data = mutate(data, rng)
        check(data, outcomes)
    print(outcomes)
    assert outcomes.get("decoded", 0) > 1000  # a photo with broken EXIF is still a photo


@pytest.mark.parametrize("entries", [
    [(0x0112, 3, 1, 6), (0x011A, 2, 3, int.from_bytes(b"72\x00\x00", "little"))],  # XResolution as ASCII
    [(0x0112, 3, 1, 3), (0x010F, 5, 1, 38)],   # Make as a rational
    [(0x0112, 3, 1, 8), (0x0128, 7, 2, 0x0100)],  # ResolutionUnit as undefined bytes
], ids=["xresolution-ascii", "make-rational", "unit-undefined"])
def test_exif_that_broke_exif_transpose(entries):
    """Orientation 2-8 plus a tag of an unexpected type: ImageOps.exif_transpose raised
    struct.error / TypeError on these; the photo must still decode, upright."""
    image = Image.new("RGB", (40, 20), "white")
    data = with_exif(encode(image, "JPEG"), exif_block(entries, tail=bytes(16)), random.Random(0))
    picture = decode_picture(data)
    assert picture.rgb.shape[2] == 3 and picture.width * picture.height == 800


def test_jpeg_with_thousands_of_scans_is_refused_before_decoding():
    """The decoder passes over every block once per scan, and a repeated scan is 14 bytes:
    3,000 of them in a 58 KB 2000x2000 JPEG took 12 s to decode (20,000 in a 6000x6000
    one: minutes, so the sweep got a 504 and the thread kept a decoding slot)."""
    data = many_scans(2000, 2000, 3000)
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        decode_picture(data, min_side=640)
    assert status_of(caught.value) == 400 and caught.value.code == "too_many_scans", caught.value.message
    assert time.perf_counter() - started < 1.0
    assert decode_picture(many_scans(64, 64, 20)).rgb.shape == (64, 64, 3)  # a few extra scans are fine


def test_every_mode_decodes():
    rng = random.Random(SEED + 2)
    photo = Image.open(FIXTURES / "obama.jpg")
    for _ in range(4):
        for name, data in mode_images(photo, rng):
            picture = decode_picture(data)
            assert picture.rgb.dtype == np.uint8 and picture.rgb.shape[2] == 3, name


def test_bombs_are_refused_or_decode_quickly():
    for name, data in bombs():
        started = time.perf_counter()
        try:
            picture = decode_picture(data, min_side=1280)
            assert picture.rgb.shape[2] == 3
        except InputError as error:
            assert 400 <= status_of(error) < 500, (name, error.message)
        assert time.perf_counter() - started < 15, name
