"""Private temporary files for clips: FFmpeg (through cv2.VideoCapture/VideoWriter) needs a path.

Every file lives in one folder per user under the system's temporary folder
(``emotion-video-<uid>``, mode 0700, checked to be ours and not a link), is created with
mode 0600 under a random name that carries the creating process's id and start time, and is
removed by the ``temporary_file`` context on every way out (success, error, the caller
closing early). A process killed before it could clean up leaves its files behind:
``remove_stale`` (run once per process before its first clip, and by the service when it
starts) deletes the files of processes that no longer run. The start time tells a process
apart from a later one that got the same id (a restarted container numbers its processes
the same way each time). Names and contents are never logged.
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


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc; "0" where there is no
    /proc): with the id, it names one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def _owner(pid: int) -> str:
    return f"{PREFIX}{pid}-{_started(pid)}-"


def _process_of(name: str) -> tuple[int, str] | None:
    parts = name.split("-")
    if len(parts) >= 4 and parts[0] + "-" == PREFIX and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), parts[2]
    return None


def _running(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started == "0" or _started(pid) == started


def remove_stale() -> int:
    """Delete the clip files of processes that no longer run; how many were deleted."""
    removed = 0
    for entry in folder().iterdir():
        process = _process_of(entry.name)
        if process is not None and not _running(*process):
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
    fd, name = tempfile.mkstemp(prefix=_owner(os.getpid()), suffix=suffix, dir=folder())
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
    mine = _owner(os.getpid())
    return sorted(p for p in folder().iterdir() if p.name.startswith(mine))
