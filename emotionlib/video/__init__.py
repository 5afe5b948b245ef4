"""Video: every person's emotions over time, from a clip (MP4, MOV, WebM, AVI, MKV).

Modules: container (what the bytes are), reader (frames sampled by time, limits, the
temporary file), tempfiles (private files FFmpeg can read).
"""
from emotionlib.video.reader import ClipInfo, VideoReader, check_fps

__all__ = ["ClipInfo", "VideoReader", "check_fps"]
