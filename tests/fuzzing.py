"""Seeded hostile images, shared by tests/pipeline/test_fuzz.py (the decoder in-process) and
benchmarks/hostile_sweep.py (the live service): byte mutations, bit flips and truncations
of real JPEG/PNG bytes, broken EXIF blocks, every image mode the decoder may meet,
decompression bombs and things that are not images. Everything is built in memory from
a photo and a random.Random, so the same seed gives the same bytes.
"""
from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def small_seeds(photo: Image.Image) -> list[bytes]:
    """Small real images (the photo at 72x90) in the formats, modes and layouts the API accepts."""
    photo = photo.convert("RGB").resize((72, 90))
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


# ---------- byte-level damage ----------

def mutate(data: bytes, rng: random.Random) -> bytes:
    """1 to 16 random edits: bit flips, special bytes, deletions, insertions, truncation,
    repeated runs."""
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


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    """1 to 32 single-bit flips, half of them in the first 2 KiB (headers, tables)."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 8, 32))):
        at = rng.randrange(min(len(buf), 2048)) if rng.random() < 0.5 else rng.randrange(len(buf))
        buf[at] ^= 1 << rng.randrange(8)
    return bytes(buf)


def truncate(data: bytes, rng: random.Random) -> bytes:
    """The first n bytes: anywhere, or within the first 64 bytes (inside the header)."""
    end = rng.randrange(1, 64) if rng.random() < 0.25 else rng.randrange(1, len(data))
    return data[:end]


# ---------- EXIF ----------

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
    """The JPEG (APP1) or PNG (eXIf chunk, CRC right 80% of the time) with this EXIF block."""
    if seed.startswith(b"\xff\xd8"):
        if len(exif) > 65000:
            exif = exif[:65000]
        return seed[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + seed[2:]
    payload = exif[6:]  # PNG's eXIf chunk holds the TIFF structure without "Exif\0\0"
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload) if rng.random() < 0.8 else 0)
    return seed[:33] + chunk + seed[33:]  # after the signature and IHDR


# ---------- PNG and JPEG built by hand ----------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_deflated(size: int, level: int = 9) -> bytes:
    """zlib stream of `size` zero bytes, built without holding them all."""
    packer, block, out = zlib.compressobj(level), bytes(1 << 20), []
    for start in range(0, size, len(block)):
        out.append(packer.compress(block[:min(len(block), size - start)]))
    return b"".join(out) + packer.flush()


def png_image(width: int, height: int, color_type: int = 0, depth: int = 8, rng: random.Random | None = None,
              before_idat: bytes = b"", idat: bytes | None = None) -> bytes:
    """A PNG with any colour type and bit depth (16-bit RGB, 2-bit grey, ... that Pillow
    does not write): random rows with rng, zero rows without; a palette for type 3."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    row = (width * _CHANNELS[color_type] * depth + 7) // 8
    if idat is None:
        if rng is None:
            idat = zeros_deflated((row + 1) * height)
        else:
            idat = zlib.compress(b"".join(b"\x00" + rng.randbytes(row) for _ in range(height)))
    extra = before_idat
    if color_type == 3:
        extra = png_chunk(b"PLTE", (rng or random.Random(0)).randbytes(3 * (1 << min(depth, 8)))) + extra
    return (PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a well-formed JPEG; a scan's entropy-coded
    data belongs to its SOS segment."""
    out, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xD9:
            out.append((marker, at, at + 2))
            break
        end = at + 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        out.append((marker, at, end))
        at = end
    return out


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOFn) claiming another size."""
    for marker, start, _ in jpeg_segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[:start + 5] + struct.pack(">HH", height, width) + data[start + 9:]
    raise ValueError("no frame header")


def many_scans(width: int, height: int, scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated `scans` times: a few bytes per scan,
    each costing the decoder a pass over every block of the image (a CPU bomb)."""
    data = encode(Image.new("L", (width, height), 128), "JPEG", progressive=True, quality=90)
    last = [(start, end) for marker, start, end in jpeg_segments(data) if marker == 0xDA][-1]
    return data[:last[1]] + data[last[0]:last[1]] * scans + data[last[1]:]


# ---------- every image mode ----------

def mode_images(photo: Image.Image, rng: random.Random) -> list[tuple[str, bytes]]:
    """(name, bytes) of the photo in every mode JPEG and PNG can carry, at a random size
    (sometimes 1 or 2 pixels wide or high), Pillow-written and hand-built."""
    side = rng.choice((1, 2, 3, 7, 16, 48, 61, 97, 150, 230))
    other = rng.choice((1, 2, 5, 48, 64, 120, 181, 300))
    size = (side, other) if rng.random() < 0.5 else (other, side)
    rgb = photo.convert("RGB").resize(size)
    exif = Image.Exif()
    exif[0x0112] = rng.randrange(1, 9)
    out = [
        ("png 1", encode(rgb.convert("1"), "PNG")),
        ("png L", encode(rgb.convert("L"), "PNG")),
        ("png LA", encode(rgb.convert("LA"), "PNG")),
        ("png P", encode(rgb.convert("P"), "PNG")),
        ("png P transparency", encode(rgb.convert("P"), "PNG", transparency=rng.randrange(256))),
        ("png P 4-bit", encode(rgb.convert("P", colors=16), "PNG", bits=4)),
        ("png RGB", encode(rgb, "PNG")),
        ("png RGB transparency", encode(rgb, "PNG", transparency=(0, 0, 0))),
        ("png RGBA", encode(rgb.convert("RGBA"), "PNG")),
        ("png I;16", encode(rgb.convert("L").convert("I;16"), "PNG")),
        ("png I;16B", encode(rgb.convert("L").convert("I;16B"), "PNG")),
        ("png L exif", encode(rgb.convert("L"), "PNG", exif=exif.tobytes())),
        ("jpeg L", encode(rgb.convert("L"), "JPEG")),
        ("jpeg RGB 4:4:4", encode(rgb, "JPEG", subsampling=0, quality=95)),
        ("jpeg RGB 4:2:2", encode(rgb, "JPEG", subsampling=1)),
        ("jpeg RGB 4:2:0 q1", encode(rgb, "JPEG", subsampling=2, quality=1)),
        ("jpeg RGB progressive", encode(rgb, "JPEG", progressive=True, optimize=True)),
        ("jpeg RGB keep_rgb", encode(rgb, "JPEG", keep_rgb=True)),
        ("jpeg RGB restart markers", encode(rgb, "JPEG", restart_marker_blocks=1)),
        ("jpeg CMYK", encode(rgb.convert("CMYK"), "JPEG")),
        ("jpeg YCbCr", encode(rgb.convert("YCbCr"), "JPEG")),
        ("jpeg RGB exif", encode(rgb, "JPEG", exif=exif.tobytes())),
        ("jpeg MPO", encode(rgb, "MPO", save_all=True, append_images=[rgb.convert("L").convert("RGB")])),
    ]
    for color_type, depths in ((0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)), (4, (8, 16)), (6, (8, 16))):
        for depth in depths:
            out.append((f"png colour type {color_type} depth {depth}",
                        png_image(size[0], size[1], color_type, depth, rng)))
    trns = png_chunk(b"tRNS", b"\x00\x07")
    out.append(("png grey tRNS", png_image(size[0], size[1], 0, 8, rng, before_idat=trns)))
    out.append(("png RGB 16-bit tRNS", png_image(size[0], size[1], 2, 16, rng,
                                                 before_idat=png_chunk(b"tRNS", bytes(6)))))
    out.append(("png palette tRNS", png_image(size[0], size[1], 3, 8, rng,
                                              before_idat=png_chunk(b"tRNS", rng.randbytes(rng.randrange(1, 257))))))
    return out


# ---------- bombs ----------

def bombs(max_pixels: int = 50_000_000) -> list[tuple[str, bytes]]:
    """(name, bytes): images whose header claims more pixels than the limit, images just
    inside it that decompress from a few KB, compressed metadata bombs, and a JPEG whose
    thousands of tiny scans cost seconds each to decode."""
    side = int(max_pixels ** 0.5)
    small = encode(Image.new("L", (64, 64), 200), "JPEG")
    big_text = zeros_deflated(64 << 20)
    return [
        ("png 100000x100000 header", png_image(100_000, 100_000, 0, 1, idat=zlib.compress(bytes(64)))),
        ("png 2^31-1 square header", png_image(2**31 - 1, 2**31 - 1, 0, 8, idat=zlib.compress(bytes(64)))),
        ("png just over the limit", png_image(side + 1, side + 1, 0, 1, idat=zlib.compress(bytes(64)))),
        (f"png {side}x{side} 1-bit zeros", png_image(side, side, 0, 1)),
        ("png 4000x4000 RGB zeros", png_image(4000, 4000, 2, 8)),
        (f"png {max_pixels}x1", png_image(max_pixels, 1, 0, 1)),
        (f"png 1x{max_pixels}", png_image(1, max_pixels, 0, 1)),
        ("png 0x0", png_image(0, 0, 0, 8, idat=zlib.compress(b""))),
        ("png zTXt 64 MiB", png_image(32, 32, 0, 8, before_idat=png_chunk(b"zTXt", b"k\x00\x00" + big_text))),
        ("png iCCP 64 MiB", png_image(32, 32, 2, 8, before_idat=png_chunk(b"iCCP", b"p\x00\x00" + big_text))),
        ("png IDAT 64 MiB for 32x32", png_image(32, 32, 0, 8, idat=big_text)),
        ("png 100000 empty chunks", png_image(8, 8, 0, 8, before_idat=png_chunk(b"abCd", b"") * 100_000)),
        ("jpeg 65500x65500 header", with_jpeg_size(small, 65500, 65500)),
        ("jpeg 0x64 header", with_jpeg_size(small, 0, 64)),
        ("jpeg 65500x763 grey", encode(Image.new("L", (65500, max_pixels // 65500), 90), "JPEG")),
        ("jpeg 763x65500 grey", encode(Image.new("L", (max_pixels // 65500, 65500), 90), "JPEG")),
        ("jpeg 2000x2000, 3000 scans", many_scans(2000, 2000, 3000)),
        ("jpeg 6000x6000, 20000 scans", many_scans(6000, 6000, 20_000)),
        ("gif 65535x65535 header", b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00,"
         + bytes(4) + struct.pack("<HH", 65535, 65535) + b"\x00\x02\x02D\x01\x00;"),
    ]


# ---------- not images ----------

def non_images(rng: random.Random, photo: Image.Image) -> list[tuple[str, bytes]]:
    small = photo.convert("RGB").resize((40, 50))
    out = [
        ("text", b"hello, this is not a photo\n" * rng.randrange(1, 50)),
        ("html", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"),
        ("svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"/>'),
        ("pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        ("zip", b"PK\x03\x04" + rng.randbytes(200)),
        ("gzip", b"\x1f\x8b\x08\x00" + rng.randbytes(200)),
        ("json", b'{"image": "data:image/jpeg;base64,/9j/4AAQ"}'),
        ("elf", b"\x7fELF\x02\x01\x01" + bytes(100)),
        ("utf-16 text", "not a photo".encode("utf-16")),
        ("random bytes", rng.randbytes(rng.randrange(1, 5000))),
        ("zeros", bytes(rng.randrange(1, 5000))),
        ("0xff bytes", b"\xff" * rng.randrange(1, 5000)),
        ("jpeg SOI only", b"\xff\xd8"),
        ("jpeg SOI EOI", b"\xff\xd8\xff\xd9"),
        ("png signature only", PNG_SIGNATURE),
        ("png signature and IEND", PNG_SIGNATURE + png_chunk(b"IEND", b"")),
        ("jpeg after garbage", b"GARBAGE" + encode(small, "JPEG")),
        ("base64 jpeg", __import__("base64").b64encode(encode(small, "JPEG"))),
        ("gif", encode(small, "GIF")),
        ("bmp", encode(small, "BMP")),
        ("tiff", encode(small, "TIFF")),
        ("tiff F", encode(small.convert("F"), "TIFF")),
        ("tiff I;16", encode(small.convert("I;16"), "TIFF")),
        ("tiff LAB", encode(small.convert("LAB"), "TIFF")),
        ("webp", encode(small, "WEBP")),
        ("ico", encode(small, "ICO")),
        ("ppm", encode(small, "PPM")),
        ("tga", encode(small, "TGA")),
        ("pcx", encode(small, "PCX")),
        ("eps header", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"),
    ]
    return out


# Form field values every numeric and JSON field must refuse with a 400 (issue 16: a 310-digit
# min_detection_confidence was a 500): overflow, huge integers, NaN, infinities, wrong JSON
# types, text longer than any field may be. boxes is not a field of /emotion/batch.
HOSTILE_FIELDS = {
    "min_detection_confidence": ["1" + "0" * 309, "9" * 4300, "9" * 4301, "-" + "9" * 400, "NaN", "nan", "Infinity",
                                 "-Infinity", "inf", "1e999", "-1e999", "[]", "{}", "true", "[0.5]", "0.5" * 20_000,
                                 "1_000", "0x1p-2", "\u0000", ""],
    "boxes": ["[[0, 0, " + "9" * 400 + ", 1]]", "[[0, 0, 1e999, 1]]", "[[0, 0, NaN, 1]]", "[[0, 0, Infinity, 1]]",
              "[[0, 0, -Infinity, 1]]", "[[" + "9" * 4301 + ", 0, 1, 1]]", "[[0, 0, 1, 1]]" + " " * 70_000,
              str([[0, 0, 1, 1]] * 5000), "[" * 30_000, "1e999", "NaN", "9" * 400],
    "detect": ["NaN", "1e999", "9" * 5000, "2", "-1", "", "true" * 20_000, "[]", "null"],
}

