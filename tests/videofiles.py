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


# ---------- every kind of bad input ----------

RNG = np.random.default_rng(17)


def made_clips(folder: Path) -> dict[str, bytes]:
    """Clips written with cv2.VideoWriter into folder: 20 frames of 160x120 at 10 frames/s."""
    return {"mp4": cv2_clip(folder / "a.mp4"), "avi": cv2_clip(folder / "a.avi", "MJPG"),
            "webm": cv2_clip(folder / "a.webm", "VP80"), "mp4_empty": cv2_clip(folder / "e.mp4", frames=0),
            "avi_empty": cv2_clip(folder / "e.avi", "MJPG", frames=0)}


def _png() -> bytes:
    return cv2.imencode(".png", frame(0))[1].tobytes()


# Bad video input, every kind the tests try (tests/pipeline/test_video_input.py in-process,
# tests/serving/test_video_http.py over HTTP): name -> (bytes, or a function of made_clips'
# clips, expected status, expected code).
CASES = {
    "empty": (b"", 400, "empty_file"),
    "text": (b"just some text, not a video\n" * 3, 400, "not_a_video"),
    "html": (b"<!DOCTYPE html><html><body>hi</body></html>", 400, "not_a_video"),
    "pdf": (b"%PDF-1.7\n" + bytes(200), 400, "not_a_video"),
    "zip": (b"PK\x03\x04" + bytes(200), 400, "not_a_video"),
    "random bytes": (RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes(), 400, "not_a_video"),
    "jpeg photo": (jpeg(frame(0)), 415, "unsupported_video_type"),
    "png image": (_png(), 415, "unsupported_video_type"),
    "gif": (b"GIF89a" + bytes(100), 415, "unsupported_video_type"),
    "heic image": (b"\x00\x00\x00\x18ftypheic" + bytes(100), 415, "unsupported_video_type"),
    "mpeg-ts": ((b"\x47" + bytes(187)) * 4, 415, "unsupported_video_type"),
    "flv": (b"FLV\x01\x05" + bytes(100), 415, "unsupported_video_type"),
    "wav audio": (wav(), 415, "audio_only"),
    "mp3 audio": (mp3(), 415, "audio_only"),
    "m4a audio": (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + b"\x00\x00\x00\x08free", 415, "audio_only"),
    "matroska audio only": (matroska([audio_track()], [(i * 100, bytes(1600)) for i in range(5)]), 415, "audio_only"),
    "matroska without tracks": (matroska(None, []), 400, "no_video_track"),
    "matroska zero frames": (matroska([video_track()], []), 400, "no_frames"),
    "mp4 zero frames": (lambda m: m["mp4_empty"], 400, "no_video_track"),
    "avi zero frames": (lambda m: m["avi_empty"], 400, "no_frames"),
    "mp4 truncated": (lambda m: m["mp4"][:len(m["mp4"]) // 2], 400, "truncated_video"),
    "mp4 cut in its header": (lambda m: m["mp4"][:20], 400, "truncated_video"),
    "avi truncated": (lambda m: m["avi"][:len(m["avi"]) // 2], 400, "truncated_video"),
    "webm truncated": (lambda m: m["webm"][:len(m["webm"]) // 2], 400, "truncated_video"),
    "matroska header only": (lambda m: m["webm"][:40], 400, "truncated_video"),
    "mp4 garbage boxes": (b"\x00\x00\x00\x18ftypisom" + RNG.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
                          400, "corrupt_video"),
    "matroska garbage after its header": (element("1A45DFA3", [element("4282", "matroska")])
                                          + RNG.integers(0, 256, 500, dtype=np.uint8).tobytes(), 400, "corrupt_video"),
    "matroska unknown codec": (mjpeg_matroska([0, 40, 80], codec="V_NOPE"), 415, "unsupported_video_codec"),
    "avi unknown codec": (lambda m: avi_patch(m["avi"], fourcc=b"XXXX"), 415, "unsupported_video_codec"),
    "avi frames not its codec": (lambda m: avi_patch(m["avi"], fourcc=b"H264"), 400, "corrupt_video"),
    "avi 1e9 frames/s": (lambda m: avi_patch(m["avi"], rate=1_000_000_000, scale=1), 400, "invalid_frame_rate"),
    "avi 1 frame per 1000 s": (lambda m: avi_patch(m["avi"], rate=1, scale=1000), 400, "invalid_frame_rate"),
    "matroska 1 ns frames": (mjpeg_matroska(list(range(10)), default_duration_ns=1), 400, "invalid_frame_rate"),
    "avi 2^31 frames": (lambda m: avi_patch(m["avi"], length=2**31 - 1), 400, "invalid_frame_count"),
}
