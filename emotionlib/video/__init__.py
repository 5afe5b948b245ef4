"""Video: every person's emotions over time, from a clip (MP4, MOV, WebM, AVI, MKV).

    from emotionlib import EmotionPipeline

    pipeline = EmotionPipeline.from_model()      # or from_store()
    result = pipeline.video(open("clip.mp4", "rb").read(), fps=2)     # or a path
    result.clip.duration, result.clip.frames_analysed
    for frame in result.frames:                 # frame.t, frame.faces[i].track_id, .face.emotion
        ...
    for track in result.tracks:                 # track.track_id, first_t, last_t, dominant_emotion
        ...
    result.to_dict()                            # the JSON answer

    with pipeline.video_frames(path, fps=2) as frames:   # streaming: one frame at a time
        for frame in frames:
            ...
        frames.tracks()

Modules: container (what the bytes are), reader (frames sampled by time, limits, the
temporary file), tracking (track ids and per-track sums), analysis (the pipeline over
frames, batching, in-process driver), annotate (the annotated WebM), tempfiles.
"""
from emotionlib.video.analysis import TrackedFace, VideoAnalysis, VideoFrame, VideoResult
from emotionlib.video.reader import ClipInfo, VideoReader, check_fps
from emotionlib.video.tracking import TrackSummary

__all__ = ["ClipInfo", "TrackSummary", "TrackedFace", "VideoAnalysis", "VideoFrame", "VideoReader", "VideoResult",
           "check_fps"]
