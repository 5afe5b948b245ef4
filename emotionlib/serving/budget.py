"""One memory budget per API worker for the decoded pixels of the requests in progress.

Every photo of every endpoint reserves, before it is decoded, the most memory its pixels will
take, worked out from its header (``bytes_needed``: width x height x the bytes per pixel of
what the request does with them, plus detection's share; measured by
tests/serving/test_budget.py). It gives them
back once it no longer holds them: a photo of ``/emotion`` or ``/emotion/batch`` once its faces
are cut out (the crops, 48x48 bytes each, are not counted), ``/emotion/annotate`` once its
answer is encoded, when the reservation shrinks to the encoded answer's own size and is held
until that answer is gone (sent, or dropped). A reservation that does not fit waits, first
come first served, at most ``wait_s``; then the request gets 503 ``overloaded``. So the
decoded pixels held by one worker never pass EMOTION_MAX_IMAGE_MEMORY_MB, whatever the
endpoints, the photos' shapes and the number of requests; the settings check that one photo
of EMOTION_MAX_IMAGE_PIXELS fits on its own.

A clip (emotionlib/serving/video.py) is decoded and searched one frame at a time and holds only
the frames in flight, never the clip, so it reserves once, from its header's frame size, what
its frames in flight take (``clip_bytes_needed``), for as long as it is analysed; a frame larger
than the header said (a resolution change) grows the reservation before the next frame. A task
waits for room as long as it takes (it already waits its turn); an annotated clip whose frames
need more than the whole budget (4K at the defaults) is refused with 413 ``frame_too_large``
(VP8 takes about 0.35 s per 720p frame here: such a WebM would rarely be written within the
60 s request timeout anyway).

The event loop is the only place the budget changes; a release from another thread (a
garbage-collected answer) is handed to it.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from dataclasses import dataclass, field

import anyio

from emotionlib.errors import EmotionError

MIB = 1024 * 1024

# Peak bytes per pixel of the full image, by what a request does with a photo (measured by
# tests/serving/test_budget.py for every PNG and JPEG mode, which keeps them true):
# - "faces": decoding (Pillow's image, at most 4 bytes per pixel, and the RGB result, 3,
#   converted a tile at a time) and finding the faces (the gray image, 1): 8.3 at most.
# - "annotate": the same, then the RGB image kept, drawn on and encoded (the encoded bytes, at
#   most about the raw image's size, and OpenCV's growing buffer they are copied from) and the
#   answer built from them (JSON: base64, 4 per pixel, once the image is gone): 9.1 at most.
BYTES_PER_PIXEL = {"faces": 9, "annotate": 10}
# Besides: the image searched for faces (downscaled to EMOTION_DETECT_MAX_SIDE when larger:
# its RGB and gray copies and the detector's work, up to 6 bytes per pixel of it), and a few
# MiB whatever the size (the tiles of a mode conversion, the labels, Python's own).
DETECTION_BYTES_PER_PIXEL = 6
FIXED_BYTES = 8 * MIB
# How long a photo may wait for memory before its request is refused (503 overloaded):
# below the service's 60 s request timeout.
WAIT_S = 30.0


# A clip in progress, per pixel of its frame (measured by tests/serving/test_budget.py on MPEG-4
# clips of 640x360 to 1920x1080, through the endpoints' own code):
# - "clip" (/emotion/video and the task): FFmpeg's decoded and reference frames, the frame's BGR
#   and RGB copies and its search (EMOTION_VIDEO_DETECT_MAX_SIDE: the detection share above):
#   20-28 bytes per pixel.
# - "clip_annotate": the same, the frames waiting to be drawn and written (up to two batches of
#   BATCH_FRAMES: the producer decodes on while the slower VP8 encoder writes), their drawn
#   copies, and libvpx's own frames and contexts: about 126 bytes per pixel and 40 MiB whatever
#   the size (360p to 1080p).
CLIP_BYTES_PER_PIXEL = {"clip": 22, "clip_annotate": 128}
CLIP_FIXED_BYTES = {"clip": 0, "clip_annotate": 48 * MIB}


def bytes_needed(width: int, height: int, use: str, detect_max_side: int) -> int:
    """The reservation of a width x height photo used for ``use`` (a key of BYTES_PER_PIXEL)."""
    pixels = width * height
    return pixels * BYTES_PER_PIXEL[use] + min(pixels, detect_max_side ** 2) * DETECTION_BYTES_PER_PIXEL + FIXED_BYTES


def clip_bytes_needed(width: int, height: int, annotate: bool, detect_max_side: int) -> int:
    """The reservation of a clip in progress with width x height frames (its frames in flight);
    detect_max_side: EMOTION_VIDEO_DETECT_MAX_SIDE."""
    use = "clip_annotate" if annotate else "clip"
    pixels = width * height
    return (pixels * CLIP_BYTES_PER_PIXEL[use] + min(pixels, detect_max_side ** 2) * DETECTION_BYTES_PER_PIXEL
            + FIXED_BYTES + CLIP_FIXED_BYTES[use])


@dataclass(eq=False)
class Reservation:
    """Bytes of a MemoryBudget held by one photo. ``shrink`` gives some back, ``release`` the rest
    (idempotent; from any thread)."""
    budget: "MemoryBudget"
    nbytes: int
    released: bool = field(default=False)

    def shrink(self, nbytes: int) -> None:
        """Keep only nbytes (e.g. the encoded answer's size) of the reservation."""
        if not self.released and nbytes < self.nbytes:
            self.budget._give_back(self.nbytes - nbytes)
            self.nbytes = nbytes

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.budget._give_back(self.nbytes)

    def hold_until_gone(self, answer: object) -> None:
        """Keep the reservation while ``answer`` (the response holding the encoded bytes) lives."""
        weakref.finalize(answer, self.release)


class MemoryBudget:
    """``capacity`` bytes shared by the photos of one API worker's requests in progress."""

    def __init__(self, capacity: int, wait_s: float = WAIT_S):
        self.capacity, self.wait_s = capacity, wait_s
        self.in_use = 0
        self._waiting: collections.deque[tuple[int, anyio.Event]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    async def reserve(self, nbytes: int, what: str = "a photo", wait_s: float | None = None) -> Reservation:
        """A reservation of nbytes, once it fits (first come, first served); EmotionError
        ``overloaded`` after wait_s (default: the budget's; math.inf: as long as it takes).
        nbytes above the capacity is a caller's bug (ValueError): the settings make every
        allowed photo fit."""
        wait_s = self.wait_s if wait_s is None else wait_s
        if nbytes > self.capacity:
            raise ValueError(f"{what} needs {nbytes:,} bytes, more than the whole budget of {self.capacity:,}")
        if self._loop is None:
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        if not self._waiting and self.in_use + nbytes <= self.capacity:
            self.in_use += nbytes
            return Reservation(self, nbytes)
        turn = (nbytes, anyio.Event())
        self._waiting.append(turn)
        try:
            with anyio.fail_after(wait_s):
                await turn[1].wait()
        except BaseException as error:
            if turn[1].is_set():  # admitted just as it was cancelled: give it back
                self._give_back(nbytes)
            else:
                self._waiting.remove(turn)
                self._admit()  # the next one may fit now
            if isinstance(error, TimeoutError):
                raise EmotionError("overloaded", f"the server is busy (memory for decoded images: {what} needs "
                                   f"{nbytes / MIB:,.0f} MiB and waited {wait_s:g} s); retry in a moment") \
                    from None
            raise
        return Reservation(self, nbytes)

    def _give_back(self, nbytes: int) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            try:
                self._loop.call_soon_threadsafe(self._give_back, nbytes)
                return
            except RuntimeError:  # that loop is closed: nobody waits on it any more
                pass
        self.in_use -= nbytes
        self._admit()

    def _admit(self) -> None:
        """Admit waiting photos in order while the first one fits."""
        while self._waiting and self.in_use + self._waiting[0][0] <= self.capacity:
            nbytes, event = self._waiting.popleft()
            self.in_use += nbytes
            event.set()
