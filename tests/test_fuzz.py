"""Seeded fuzzing of the decoder: mutated JPEG/PNG bytes and EXIF blocks decode or give an
InputError (a 4xx), never any other exception (a 500)."""
from __future__ import annotations

import random
import struct
import time

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, encode
from emotionlib.decode import decode_picture
from emotionlib.errors import InputError

SEED = 20261126


def seeds() -> list[bytes]:
    """Small real images in the formats, modes and layouts the API accepts."""
    photo = Image.open(FIXTURES / "obama.jpg").convert("RGB").resize((72, 90))
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        encode(photo, "JPEG", quality=80),
        encode(photo, "JPEG", progressive=True, quality=70),
        encode(photo, "JPEG", exif=exif.tobytes()),
        encode(photo.convert("CMYK"), "JPEG"),
        encode(photo.convert("L"), "JPEG"),
        encode(photo, "PNG"),
        encode(photo.convert("RGBA"), "PNG"),
        encode(photo.convert("P"), "PNG"),
        encode(photo, "PNG", exif=exif.tobytes()),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 16))):
        kind = rng.randrange(6)
        at = rng.randrange(len(buf))
        if kind == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif kind == 2:
            del buf[at:at + rng.randrange(1, 64)]
        elif kind == 3:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        elif kind == 4:
            del buf[at:]
        else:
            start = rng.randrange(len(buf))
            buf[at:at] = buf[start:start + rng.randrange(1, 128)]
        if not buf:
            buf = bytearray(data[:1])
    return bytes(buf)


# TIFF field types: BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG,
# SRATIONAL, FLOAT, DOUBLE, and some that do not exist.
TYPES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 13, 99, 0xFFFF)
TAGS = (0x0112, 0x011A, 0x011B, 0x010F, 0x0110, 0x0128, 0x0131, 0x8769, 0x8825, 0xA005, 0x927C, 0x0201)


def exif_block(entries, little: bool = True, next_ifd: int = 0, tail: bytes = b"") -> bytes:
    """An EXIF block (one IFD) from raw (tag, type, count, value-or-offset) entries."""
    order = "<" if little else ">"
    body = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(order + "HHII", tag, kind, count, value)
    body += struct.pack(order + "I", next_ifd)
    return b"Exif\x00\x00" + (b"II*\x00" if little else b"MM\x00*") + struct.pack(order + "I", 8) + body + tail


def random_exif(rng: random.Random) -> bytes:
    """An orientation of 2-8 and tags of random (wrong) types, counts and offsets,
    sometimes pointing outside the block or at itself."""
    little = rng.random() < 0.5
    entries = [(0x0112, 3, 1, rng.randrange(2, 9) << (0 if little else 16))]
    for _ in range(rng.randrange(1, 10)):
        entries.append((rng.choice(TAGS), rng.choice(TYPES), rng.choice((0, 1, 2, 4, 7, 1 << 20, 0xFFFFFFFF)),
                        rng.choice((0, 1, 8, 26, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)))))
    tail = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 48)))
    return exif_block(entries, little, rng.choice((0, 8, 0xFFFFFFFF)), tail)


def with_exif(seed: bytes, exif: bytes, rng: random.Random) -> bytes:
    if seed.startswith(b"\xff\xd8"):
        if len(exif) > 65000:
            exif = exif[:65000]
        return seed[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + seed[2:]
    import zlib

    payload = exif[6:]  # PNG's eXIf chunk holds the TIFF structure without "Exif\0\0"
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload) if rng.random() < 0.8 else 0)
    return seed[:33] + chunk + seed[33:]  # after the signature and IHDR


def check(data: bytes, outcomes: dict) -> None:
    try:
        picture = decode_picture(data, max_pixels=2_000_000, min_side=32)
    except InputError as error:
        assert 400 <= error.status < 500 and error.code and error.message
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
