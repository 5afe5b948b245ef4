"""Small video files made for the tests: plain clips from cv2.VideoWriter, a Matroska writer
for what VideoWriter cannot make (variable frame rate, audio-only, unknown codecs, missing
frames, absurd headers) and byte patches of AVI/MP4 headers."""
from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import cv2
import numpy as np


def frame(i: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A BGR frame with a bar whose position encodes i."""
    image = np.full((height, width, 3), 40, np.uint8)
    x = (i * 8) % width
    image[:, x:x + 8] = (255, 255, 255)
    return image


def cv2_clip(path: Path, fourcc: str = "mp4v", frames: int = 20, fps: float = 10.0,
             width: int = 160, height: int = 120, images=None) -> bytes:
    """A clip written with cv2.VideoWriter; its bytes. images: BGR frames (default: bars)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), fourcc
    for i in range(frames):
        writer.write(images[i] if images is not None else frame(i, width, height))
    writer.release()
    return Path(path).read_bytes()


# ---------- Matroska ----------

def _size(n: int) -> bytes:
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(n)


def element(ident: str, payload) -> bytes:
    """One EBML element: hex id, payload (int, float, str, bytes or a list of elements)."""
    if isinstance(payload, bool):
        raise TypeError(payload)
    if isinstance(payload, int):
        payload = payload.to_bytes(max(1, (payload.bit_length() + 7) // 8), "big")
    elif isinstance(payload, float):
        payload = struct.pack(">d", payload)
    elif isinstance(payload, str):
        payload = payload.encode()
    elif isinstance(payload, list):
        payload = b"".join(payload)
    return bytes.fromhex(ident) + _size(len(payload)) + payload


def video_track(codec: str = "V_MJPEG", width: int = 160, height: int = 120, default_duration_ns: int | None = None):
    entry = [element("D7", 1), element("73C5", 1), element("83", 1), element("86", codec),
             element("E0", [element("B0", width), element("BA", height)])]
    if default_duration_ns:
        entry.append(element("23E383", default_duration_ns))
    return entry


def audio_track():
    return [element("D7", 1), element("73C5", 1), element("83", 2), element("86", "A_PCM/INT/LIT"),
            element("E1", [element("B5", 8000.0), element("9F", 1), element("6264", 16)])]


def matroska(tracks: list | None, blocks, duration_ms: float | None = None) -> bytes:
    """A Matroska file: tracks (a list of track entries; None: no Tracks element), blocks
    [(timestamp ms, data)] of track 1, one cluster each."""
    header = element("1A45DFA3", [element("4286", 1), element("42F7", 1), element("42F2", 4), element("42F3", 8),
                                  element("4282", "matroska"), element("4287", 4), element("4285", 2)])
    info = [element("2AD7B1", 1_000_000), element("4D80", "tests"), element("5741", "tests")]
    if duration_ms is not None:
        info.append(element("4489", float(duration_ms)))
    body = [element("1549A966", info)]
    if tracks is not None:
        body.append(element("1654AE6B", [element("AE", t) for t in tracks]))
    for t, data in blocks:
        body.append(element("1F43B675", [element("E7", t),
                                         element("A3", b"\x81" + struct.pack(">hB", 0, 0x80) + data)]))
    return header + element("18538067", body)


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def mjpeg_matroska(times_ms, images=None, **track) -> bytes:
    """Motion-JPEG frames at the given timestamps (a variable frame rate if they are uneven)."""
    images = images if images is not None else [frame(i) for i in range(len(times_ms))]
    duration = times_ms[-1] + 40 if times_ms else None
    return matroska([video_track(**track)], [(t, jpeg(im)) for t, im in zip(times_ms, images)], duration)


# ---------- header patches ----------

def avi_patch(data: bytes, rate: int | None = None, scale: int | None = None, length: int | None = None,
              fourcc: bytes | None = None) -> bytes:
    """An AVI with its first stream header's rate/scale, length and codec changed."""
    out = bytearray(data)
    strh, strf, avih = out.find(b"strh") + 8, out.find(b"strf") + 8, out.find(b"avih") + 8
    if scale is not None:
        struct.pack_into("<I", out, strh + 20, scale)
    if rate is not None:
        struct.pack_into("<I", out, strh + 24, rate)
    if length is not None:
        struct.pack_into("<I", out, strh + 32, length)
        struct.pack_into("<I", out, avih + 16, length)
    if fourcc is not None:
        out[strh + 4:strh + 8] = fourcc
        out[strf + 16:strf + 20] = fourcc
    return bytes(out)


def mp4_rotate(data: bytes, degrees: int) -> bytes:
    """An MP4 whose video track header carries a rotation (as phones write it)."""
    out = bytearray(data)
    tkhd = out.find(b"tkhd")
    assert out[tkhd + 4] == 0  # version 0 layout
    matrix = tkhd + 4 + 4 + 4 * 4 + 4 + 8 + 8
    one, w = 0x10000, 0x40000000
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    struct.pack_into(">9i", out, matrix, cos * one, sin * one, 0, -sin * one, cos * one, 0, 0, 0, w)
    return bytes(out)


def wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes(np.zeros(8000, np.int16).tobytes())
    return buffer.getvalue()


def mp3() -> bytes:
    """An ID3 tag followed by MPEG-1 layer III frame headers (silence)."""
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + (b"\xff\xfb\x90\x64" + bytes(413)) * 20
