"""What an uploaded file is, from its bytes alone, before FFmpeg sees it.

``inspect(file)`` reads the container's structure (MP4/MOV boxes, Matroska/WebM elements,
AVI chunks) far enough to list its tracks (video, audio, other, with the video codec's tag)
and whether any frame is stored. Anything that is not one of the accepted containers gets a
precise InputError here: an image, an audio file, a document, another video container.
Only the accepted containers reach FFmpeg, which also keeps its other demuxers (playlists
that point at other files or URLs, image sequences) out of reach of uploads.

This is not a validator: a file that passes may still be corrupt; the reader finds out
when FFmpeg opens and decodes it, and uses what was found here to say why it failed.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

from emotionlib.decode import _SIGNATURES as DOCUMENTS
from emotionlib.errors import InputError

ACCEPTED = "MP4, MOV, WebM, AVI or MKV"
# Bytes read to find the tracks: an MP4 index (moov, a few MiB for a long clip) up to this ...
MAX_HEADER_BYTES = 64 * 1024 * 1024
# ... and the start of a Matroska file (its Tracks come before the first Cluster, in KiB).
MATROSKA_HEAD_BYTES = 4 * 1024 * 1024
# Video codecs the bundled FFmpeg decodes (tags as the containers write them, upper case):
# a clip with one of these that FFmpeg cannot open is corrupt, any other codec unsupported.
DECODABLE = {
    "MP4V", "FMP4", "XVID", "DIVX", "DX50", "MP4V-ES", "V_MPEG4/ISO/ASP", "V_MPEG4/ISO/SP",
    "AVC1", "AVC3", "H264", "X264", "V_MPEG4/ISO/AVC",
    "HVC1", "HEV1", "HEVC", "H265", "V_MPEGH/ISO/HEVC",
    "VP08", "VP80", "V_VP8", "VP09", "VP90", "V_VP9",
    "MJPG", "JPEG", "MJPA", "V_MJPEG", "MPG2", "V_MPEG2", "MPEG",
}

# Non-video files people send instead: (signature at offset 0, what it is, status, code).
_IMAGES = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"GIF8", "a GIF image"),
           (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"))
_AUDIO = ((b"ID3", "MP3 audio"), (b"fLaC", "FLAC audio"), (b"#!AMR", "AMR audio"), (b"OggS", "Ogg audio"))
_OTHER_VIDEO = ((b"FLV", "a Flash video (FLV)"), (b"\x00\x00\x01\xba", "an MPEG program stream"),
                (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "an ASF/WMV file"))


@dataclass(frozen=True)
class Track:
    kind: str      # "video", "audio" or "other"
    codec: str     # the codec's tag as stored (fourcc or Matroska CodecID), "" if unknown


@dataclass(frozen=True)
class Container:
    """An accepted container: its format ("mp4", "matroska", "avi"), a file suffix FFmpeg
    recognises, the tracks found (None: the structure could not be followed) and whether a
    frame is stored (None: not known)."""
    format: str
    suffix: str
    tracks: tuple[Track, ...] | None
    has_frames: bool | None = None

    @property
    def video(self) -> Track | None:
        return next((t for t in self.tracks or () if t.kind == "video"), None)

    @property
    def label(self) -> str:
        return {"mp4": "MP4/MOV", "matroska": "Matroska/WebM", "avi": "AVI"}[self.format]


def inspect(file: BinaryIO | bytes) -> Container:
    """The container of ``file`` (bytes or a seekable binary file), or an InputError saying
    what the file is instead: 400 not_a_video, 415 unsupported_video_type, 415 audio_only,
    400 no_video_track, 400 no_frames, 400 truncated_video."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        file = io.BytesIO(file)
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    head = file.read(512)
    if not head:
        raise InputError("empty_file", "the uploaded video is empty")
    if len(head) >= 8 and head[4:8] in _MP4_FIRST and struct.unpack(">I", head[:4])[0] not in range(2, 8):
        if head[4:8] == b"ftyp" and head[8:12] in _MP4_IMAGE_BRANDS:
            raise InputError("unsupported_video_type",
                             f"the file is a HEIF/AVIF image, not a video; send {ACCEPTED}")
        container = _mp4(file, size, head)
    elif head.startswith(b"\x1a\x45\xdf\xa3"):
        container = _matroska(file, size)
    elif head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        container = _avi(file, size)
    else:
        raise _not_accepted(head)
    _check_tracks(container)
    return container


def _check_tracks(container: Container) -> None:
    if container.tracks is None:
        return
    kinds = {t.kind for t in container.tracks}
    if "video" not in kinds:
        if "audio" in kinds:
            raise InputError("audio_only", f"the {container.label} file has audio but no video track")
        raise InputError("no_video_track", f"the {container.label} file has no video track")
    if container.has_frames is False:
        raise InputError("no_frames", f"the {container.label} file's video track has no frames")


def _not_accepted(head: bytes) -> InputError:
    for signature, what in _IMAGES:
        if head.startswith(signature):
            return InputError("unsupported_video_type", f"the file is {what}, not a video; send {ACCEPTED}")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return InputError("unsupported_video_type", f"the file is a WebP image, not a video; send {ACCEPTED}")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE" or head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return InputError("audio_only", "the file is audio (WAV/AIFF) without video")
    if head.startswith(b"OggS") and b"\x80theora" in head:
        return InputError("unsupported_video_type", f"Ogg/Theora video is not accepted; send {ACCEPTED}")
    for signature, what in _AUDIO:
        if head.startswith(signature):
            return InputError("audio_only", f"the file is {what} without video")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return InputError("audio_only", "the file is MPEG audio (MP3/AAC) without video")
    for signature, what in _OTHER_VIDEO:
        if head.startswith(signature):
            return InputError("unsupported_video_type", f"the file is {what}; send {ACCEPTED}")
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return InputError("unsupported_video_type", f"MPEG transport streams are not accepted; send {ACCEPTED}")
    lowered = head.lstrip().lower()
    for signature, what in DOCUMENTS:
        if lowered.startswith(signature.lower()):
            return InputError("not_a_video", f"the uploaded file is {what}, not a video ({ACCEPTED})")
    try:
        head.decode("utf-8")
        what = "text"
    except UnicodeDecodeError:
        what = "data in no video format this service reads"
    return InputError("not_a_video", f"the uploaded file is {what}, not a video ({ACCEPTED})")


# ---------- MP4 / MOV (ISO base media): boxes of size, type ----------

_MP4_FIRST = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
_MP4_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_MP4_IMAGE_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"}
# A file of millions of tiny boxes or elements must not keep the parser busy.
MAX_ITEMS = 100_000


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, payload end) of the boxes in data[start:end]; stops at a broken one."""
    end = len(data) if end is None else end
    pos = start
    for _ in range(MAX_ITEMS):
        if pos + 8 > end:
            return
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes):
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


def _mp4(file: BinaryIO, size: int, head: bytes) -> Container:
    """Top-level boxes are walked through the file (mdat skipped by its size); moov is read."""
    pos, moov, has_mdat = 0, None, False
    for _ in range(MAX_ITEMS):
        if pos + 8 > size:
            break
        file.seek(pos)
        header = file.read(16)
        box_size, kind = struct.unpack(">I4s", header[:8])
        length = 8
        if box_size == 1 and len(header) >= 16:
            box_size, length = struct.unpack(">Q", header[8:16])[0], 16
        elif box_size == 0:
            box_size = size - pos
        if box_size < length:
            break
        if not (kind.isascii() and kind.decode("ascii").isprintable()):
            raise InputError("corrupt_video", f"the MP4/MOV file is corrupt: unreadable box at byte {pos:,}")
        if pos + box_size > size:
            raise InputError("truncated_video",
                             f"the MP4/MOV file is truncated: its '{kind.decode('ascii')}' box "
                             f"needs {box_size:,} bytes, {size - pos:,} are there")
        if kind == b"moov":
            if box_size > MAX_HEADER_BYTES:
                return Container("mp4", ".mp4", None)
            file.seek(pos + length)
            moov = file.read(box_size - length)
        has_mdat |= kind == b"mdat"
        pos += box_size
    if moov is None:
        if head[8:12] in _MP4_AUDIO_BRANDS:
            raise InputError("audio_only", "the file is MPEG-4 audio (M4A) without video")
        raise InputError("truncated_video" if has_mdat else "no_video_track",
                         "the MP4/MOV file has no index ('moov' box): truncated, or still being written"
                         if has_mdat else "the MP4/MOV file has no tracks")
    tracks, counts = [], []
    for kind, start, end in _boxes(moov):
        if kind != b"trak":
            continue
        mdia = _child(moov, start, end, b"mdia")
        hdlr = mdia and _child(moov, *mdia, b"hdlr")
        handler = moov[hdlr[0] + 8:hdlr[0] + 12] if hdlr and hdlr[1] - hdlr[0] >= 12 else b""
        track_kind = {b"vide": "video", b"soun": "audio"}.get(handler, "other")
        codec, count = "", None
        stbl = mdia and (minf := _child(moov, *mdia, b"minf")) and _child(moov, *minf, b"stbl")
        if stbl:
            stsd = _child(moov, *stbl, b"stsd")
            if stsd and stsd[1] - stsd[0] >= 16:
                codec = moov[stsd[0] + 12:stsd[0] + 16].decode("latin-1").strip()
            for sizes in (b"stsz", b"stz2"):
                box = _child(moov, *stbl, sizes)
                if box and box[1] - box[0] >= 12:
                    count = struct.unpack(">I", moov[box[0] + 8:box[0] + 12])[0]
        tracks.append(Track(track_kind, codec))
        if track_kind == "video":
            counts.append(count)
    # Fragmented MP4 keeps its samples in moof boxes: an empty sample table says nothing then.
    if _child(moov, 0, len(moov), b"mvex") is not None or None in counts:
        frames = None
    else:
        frames = any(counts)
    return Container("mp4", ".mp4", tuple(tracks), frames)


# ---------- Matroska / WebM (EBML): elements of id, size ----------

_SEGMENT, _TRACKS, _TRACK_ENTRY, _CLUSTER = 0x18538067, 0x1654AE6B, 0xAE, 0x1F43B675
_TRACK_TYPE, _CODEC_ID = 0x83, 0x86
_UNKNOWN = -1


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    """(value, next position) of the EBML variable-length integer at pos; size -1 = unknown."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 8 - data[pos].bit_length() + 1
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos:pos + length], "big")
    if keep_marker:
        return value, pos + length
    value &= (1 << (7 * length)) - 1
    return (_UNKNOWN if value == (1 << (7 * length)) - 1 else value), pos + length


def _elements(data: bytes, pos: int, end: int):
    """(id, payload start, payload end or -1 for unknown size) of the elements in data[pos:end]."""
    for _ in range(MAX_ITEMS):
        if pos >= end:
            return
        ident = _vint(data, pos, keep_marker=True)
        size = ident and _vint(data, ident[1], keep_marker=False)
        if not size:
            return
        start = size[1]
        stop = end if size[0] == _UNKNOWN else start + size[0]
        yield ident[0], start, stop if size[0] != _UNKNOWN else _UNKNOWN
        if size[0] == _UNKNOWN or stop > end:
            return
        pos = stop


def _matroska(file: BinaryIO, size: int) -> Container:
    file.seek(0)
    data = file.read(MATROSKA_HEAD_BYTES)
    header = next(_elements(data, 0, len(data)), None)
    if header is None or header[2] == _UNKNOWN:
        raise InputError("corrupt_video", "the Matroska/WebM file's header cannot be read")
    doc_type = b"webm" if b"webm" in data[header[1]:header[2]] else b"matroska"
    suffix = ".webm" if doc_type == b"webm" else ".mkv"
    segment = next(((s, e) for i, s, e in _elements(data, header[2], len(data)) if i == _SEGMENT), None)
    if segment is None:
        if header[2] + 4 >= size:
            raise InputError("truncated_video", "the Matroska/WebM file ends after its header")
        raise InputError("corrupt_video", "the Matroska/WebM file has no readable segment")
    start, end = segment[0], len(data) if segment[1] == _UNKNOWN else min(segment[1], len(data))
    tracks, frames = None, False
    for ident, child_start, child_end in _elements(data, start, end):
        stop = end if child_end == _UNKNOWN else min(child_end, end)
        if ident == _TRACKS:
            tracks = tuple(_matroska_track(data, s, min(e, stop) if e != _UNKNOWN else stop)
                           for i, s, e in _elements(data, child_start, stop) if i == _TRACK_ENTRY)
        elif ident == _CLUSTER:
            frames = True
            break
    complete = len(data) == size
    if tracks is None:
        return Container("matroska", suffix, () if complete else None)
    return Container("matroska", suffix, tracks, True if frames else (False if complete else None))


def _matroska_track(data: bytes, start: int, end: int) -> Track:
    kind, codec = "other", ""
    for ident, s, e in _elements(data, start, end):
        e = end if e == _UNKNOWN else min(e, end)
        if ident == _TRACK_TYPE:
            kind = {1: "video", 2: "audio"}.get(int.from_bytes(data[s:e], "big"), "other")
        elif ident == _CODEC_ID:
            codec = data[s:e].rstrip(b"\x00").decode("latin-1")
    return Track(kind, codec)


# ---------- AVI (RIFF): chunks of id, size ----------

def _chunks(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        ident, length = struct.unpack("<4sI", data[pos:pos + 8])
        yield ident, pos + 8, min(pos + 8 + length, end)
        pos += 8 + length + (length & 1)


def _avi(file: BinaryIO, size: int) -> Container:
    file.seek(0)
    data = file.read(1024 * 1024)  # the hdrl list comes first and is small
    tracks = []
    for ident, start, end in _chunks(data, 12, len(data)):
        if ident == b"LIST" and data[start:start + 4] == b"hdrl":
            for sub, s, e in _chunks(data, start + 4, end):
                if sub == b"LIST" and data[s:s + 4] == b"strl":
                    tracks.append(_avi_stream(data, s + 4, e))
            break
    else:
        return Container("avi", ".avi", None)
    return Container("avi", ".avi", tuple(tracks))


def _avi_stream(data: bytes, start: int, end: int) -> Track:
    kind, codec = "other", ""
    for ident, s, e in _chunks(data, start, end):
        if ident == b"strh" and e - s >= 8:
            kind = {b"vids": "video", b"auds": "audio"}.get(data[s:s + 4], "other")
            codec = data[s + 4:s + 8].decode("latin-1").strip("\x00 ")
        elif ident == b"strf" and kind == "video" and e - s >= 20:
            compression = data[s + 16:s + 20].decode("latin-1").strip("\x00 ")
            codec = compression or codec
    return Track(kind, codec)
