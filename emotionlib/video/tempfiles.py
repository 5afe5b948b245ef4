"""Private temporary files for clips: FFmpeg (through cv2.VideoCapture/VideoWriter) needs a path.

Every file lives in one folder per user under the system's temporary folder
(``emotion-video-<uid>``, mode 0700, checked to be ours and not a link), is created with
mode 0600 under a random name that carries the creating process's id, and is removed by the
``temporary_file`` context on every way out (success, error, the caller closing early).
A process killed before it could clean up leaves its files behind: ``remove_stale`` (run
once per process, before its first clip) deletes the files of processes that no longer run.
Names and contents are never logged.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterator

PREFIX = "clip-"
_swept = False
_sweep_lock = threading.Lock()


def folder() -> Path:
    """The private folder (created on first use)."""
    path = Path(tempfile.gettempdir()) / f"emotion-video-{os.getuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a folder owned by this user; refusing to put clips there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _pid_of(name: str) -> int | None:
    parts = name.split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[0] + "-" == PREFIX and parts[1].isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> int:
    """Delete the clip files of processes that no longer run; how many were deleted."""
    removed = 0
    for entry in folder().iterdir():
        pid = _pid_of(entry.name)
        if pid is not None and pid != os.getpid() and not _running(pid):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def _sweep_once() -> None:
    global _swept
    with _sweep_lock:
        if not _swept:
            remove_stale()
            _swept = True


@contextlib.contextmanager
def temporary_file(suffix: str = "", data: bytes | None = None) -> Iterator[Path]:
    """A new private file (holding ``data``, if given), removed when the context ends."""
    _sweep_once()
    fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=suffix, dir=folder())
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            if data is not None:
                file.write(data)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def leftovers() -> list[Path]:
    """This process's clip files that still exist (tests: nothing may be left)."""
    mine = f"{PREFIX}{os.getpid()}-"
    return sorted(p for p in folder().iterdir() if p.name.startswith(mine))
