"""EmotionPipeline.video on generated clips with known tracks (tests/clips.py): identity
switches, tracks, the answer's shape, sampling by time, rotation, streaming, batching, the
annotated WebM and the temporary files."""
from __future__ import annotations

import json
import os
import stat

import cv2
import numpy as np
import pytest
from PIL import Image

from emotionlib.errors import InputError
from emotionlib.labels import EMOTIONS
from emotionlib.video import tempfiles
from emotionlib.video.reader import VideoReader
from tests.clips import identity_switches, three_people, write_clip
from tests.helpers import FIXTURES
from tests.videofiles import cv2_clip, mjpeg_matroska, mp4_rotate


@pytest.fixture(scope="module")
def pipeline(bundled_model_store):
    from emotionlib import EmotionPipeline

    return EmotionPipeline.from_store(threads=1).prepare()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """The 30 s 720p clip: A and B cross, C leaves and comes back (10 frames/s written)."""
    path = tmp_path_factory.mktemp("clips") / "three.mp4"
    write_clip(three_people(30.0, 1280, 720), path, fps=10)
    return path


@pytest.fixture(scope="module")
def answer(pipeline, long_clip):
    return pipeline.video(long_clip.read_bytes(), fps=2)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """3 s of the same scenario at 480x270 (faces 45 px), 10 frames/s."""
    path = tmp_path_factory.mktemp("clips") / "short.mp4"
    write_clip(three_people(3.0, 480, 270), path, fps=10)
    return path


def test_thirty_second_clip_has_no_identity_switch_and_three_tracks(answer):
    result = identity_switches(answer.frames, three_people(30.0, 1280, 720))
    assert result.id_switches == 0, result
    assert len(answer.tracks) == 3 and result.track_ids == 3, result
    assert all(len(ids) == 1 for ids in result.ids_per_person.values()), result
    assert result.missed <= 3 and result.unmatched <= 3, result  # the crossing: partly hidden faces


def test_clip_info(answer):
    clip = answer.clip
    assert (clip.width, clip.height, clip.fps, clip.frame_count) == (1280, 720, 10.0, 300)
    assert clip.duration == pytest.approx(30.0)
    assert clip.frames_analysed == len(answer.frames) == 60
    assert clip.analysed_fps == 2.0 and clip.rotation == 0 and (clip.container, clip.codec) == ("mp4", "mp4v")
    assert [f.t for f in answer.frames] == pytest.approx([i / 2 for i in range(60)])


def test_tracks_add_up_the_frames(answer):
    for track in answer.tracks:
        mine = [(frame.t, face) for frame in answer.frames for face in frame.faces if face.track_id == track.track_id]
        assert track.frames_seen == len(mine)
        assert (track.first_t, track.last_t) == (mine[0][0], mine[-1][0])
        for emotion in EMOTIONS:
            assert track.mean_scores[emotion] == pytest.approx(np.mean([f.face.scores[emotion] for _, f in mine]))
            assert track.frame_shares[emotion] == pytest.approx(np.mean([f.face.emotion == emotion for _, f in mine]))
        assert track.dominant_emotion == max(track.mean_scores, key=track.mean_scores.get)
    # A and C are the smiling portrait, B the other one: the model says so over the clip.
    by_person = identity_switches(answer.frames, three_people()).ids_per_person
    dominant = {name: next(t.dominant_emotion for t in answer.tracks if t.track_id == ids[0])
                for name, ids in by_person.items()}
    assert dominant["A"] == dominant["C"] == "happy"


def test_answer_is_json_with_faces_as_for_photos(answer):
    data = json.loads(json.dumps(answer.to_dict()))
    assert set(data) == {"clip", "frames", "tracks"}
    assert {"duration", "fps", "width", "height", "frames_analysed"} <= set(data["clip"])
    face = data["frames"][0]["faces"][0]
    assert set(face) == {"bounding_box", "emotion", "confidence", "scores", "detection_confidence", "track_id"}
    assert list(face["scores"]) == list(EMOTIONS)
    assert len(data["tracks"]) == 3 and data["tracks"][0]["track_id"] == 1


def test_every_frame_and_rates_above_the_clips_own(pipeline, short_clip):
    every = pipeline.video(short_clip, fps=1000)
    assert every.clip.frames_analysed == 30 and every.clip.analysed_fps == 10.0
    assert [f.t for f in every.frames] == pytest.approx([i / 10 for i in range(30)])
    assert pipeline.video(short_clip, fps=10).to_dict() == every.to_dict()
    two = pipeline.video(short_clip, fps=2)
    assert [f.t for f in two.frames] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5])
    # The same frames give the same faces, whichever rate picked them.
    by_time = {f.t: f.faces for f in every.frames}
    assert all([x.face for x in f.faces] == [x.face for x in by_time[f.t]] for f in two.frames)
    assert two.tracks and two.tracks[0].frames_seen <= 6


def test_variable_frame_rate_is_sampled_by_timestamp():
    times = [0, 40, 80, 300, 340, 1000, 1033, 1066, 2000, 2500]
    data = mjpeg_matroska(times)
    with VideoReader(data, fps=2) as reader:
        assert [t for t, _ in reader.frames()] == pytest.approx([0.0, 1.0, 2.0, 2.5])
    with VideoReader(data, fps=1000) as reader:
        assert [t for t, _ in reader.frames()] == pytest.approx([t / 1000 for t in times])
        assert reader.clip.frames_analysed == 10 and reader.clip.fps == pytest.approx(10 / 2.45, rel=0.02)


@pytest.mark.parametrize("degrees", [90, 270])
def test_rotation_metadata_gives_upright_frames_and_faces(pipeline, tmp_path, degrees):
    """A phone clip: frames stored sideways with a rotation in the header."""
    upright = cv2.cvtColor(np.asarray(Image.open(FIXTURES / "obama.jpg").convert("RGB").resize((240, 300))),
                           cv2.COLOR_RGB2BGR)
    turn = cv2.ROTATE_90_COUNTERCLOCKWISE if degrees == 90 else cv2.ROTATE_90_CLOCKWISE
    stored = cv2.rotate(upright, turn)
    data = mp4_rotate(cv2_clip(tmp_path / "phone.mp4", frames=4, fps=4, width=300, height=240,
                               images=[stored] * 4), degrees)
    result = pipeline.video(data, fps=4)
    assert (result.clip.width, result.clip.height, result.clip.rotation) == (240, 300, degrees)
    assert all(len(frame.faces) == 1 for frame in result.frames)
    assert result.frames[0].faces[0].face.emotion == "happy"
    with VideoReader(data, fps=4) as reader:
        first = next(iter(reader.frames()))[1]
    assert first.shape == (300, 240, 3)
    assert np.abs(first.astype(int) - upright[:, :, ::-1]).mean() < 12


def test_streaming_gives_the_same_frames_and_cleans_up_when_stopped_early(pipeline, short_clip):
    whole = pipeline.video(short_clip.read_bytes(), fps=5)
    with pipeline.video_frames(short_clip.read_bytes(), fps=5) as frames:
        assert frames.clip.frames_analysed == 0 and frames.clip.width == 480
        files = tempfiles.leftovers()
        assert len(files) == 1
        assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tempfiles.folder()).st_mode) == 0o700
        first = []
        for frame in frames:
            first.append(frame)
            if len(first) == 4:
                break
        assert frames.tracks()[0].frames_seen <= 4
    assert [f.to_dict() for f in first] == [f.to_dict() for f in whole.frames[:4]]
    assert tempfiles.leftovers() == []


def test_a_path_is_read_in_place_and_kept(pipeline, short_clip):
    result = pipeline.video(str(short_clip), fps=1)
    assert result.clip.frames_analysed == 3 and short_clip.exists()
    assert tempfiles.leftovers() == []


def test_faces_of_several_frames_go_to_the_classifier_together(bundled_model_store, short_clip):
    from emotionlib import EmotionPipeline

    reference = EmotionPipeline.from_store(threads=1)
    calls = []

    def classify(pixels):
        calls.append(len(pixels))
        return reference.classifier(pixels)

    spy = EmotionPipeline(classify, reference.options, input_size=reference.input_size)
    batched = spy.video(short_clip, fps=10, batch_frames=8)
    faces = sum(len(f.faces) for f in batched.frames)
    assert sum(calls) == faces and max(calls) > max(len(f.faces) for f in batched.frames)
    assert len(calls) == 4  # 30 frames in batches of 8
    calls.clear()
    single = spy.video(short_clip, fps=10, batch_frames=1, prefetch=False)
    assert len(calls) == sum(1 for f in single.frames if f.faces)
    def parts(result):
        return [(f.t, x.track_id, x.face.box, x.face.emotion) for f in result.frames for x in f.faces]

    def probabilities(result):
        return np.array([[x.face.scores[e] for e in EMOTIONS] for f in result.frames for x in f.faces])

    assert parts(single) == parts(batched)
    assert np.allclose(probabilities(single), probabilities(batched), atol=1e-5)


def test_min_detection_confidence_and_detect_false(pipeline, short_clip):
    strict = pipeline.video(short_clip, fps=2, min_detection_confidence=1.0)
    assert all(not f.faces for f in strict.frames) and strict.tracks == []
    whole = pipeline.video(short_clip, fps=2, detect=False)
    assert all(len(f.faces) == 1 and f.faces[0].face.box.as_list() == [0, 0, 480, 270] for f in whole.frames)
    assert [t.track_id for t in whole.tracks] == [1]


def test_errors_reach_pipeline_callers_and_leave_nothing(pipeline, short_clip, tmp_path):
    avi = cv2_clip(tmp_path / "a.avi", "MJPG")
    with pytest.raises(InputError) as info:
        pipeline.video(avi[:len(avi) // 2])
    assert info.value.code == "truncated_video"
    with pytest.raises(InputError) as info:
        pipeline.video(short_clip, min_detection_confidence=2)
    assert info.value.code == "invalid_field"
    assert tempfiles.leftovers() == []


def test_annotated_webm(pipeline, short_clip, tmp_path):
    from emotionlib.render import EMOTION_COLOURS
    from emotionlib.video.annotate import annotate_video

    out = tmp_path / "annotated.webm"
    result = annotate_video(pipeline, short_clip, out, fps=2)
    assert out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == 2.0
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP80"
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(bgr[:, :, ::-1])
    capture.release()
    assert len(frames) == result.clip.frames_analysed == 6
    assert frames[0].shape == (270, 480, 3)
    face = result.frames[0].faces[0]
    x, y, w, h = face.face.box.as_list()
    colour = np.array([int(EMOTION_COLOURS[face.face.emotion][i:i + 2], 16) for i in (1, 3, 5)])
    edge = frames[0][y + h // 2 - 3:y + h // 2 + 3, x:x + 4].reshape(-1, 3).astype(int)
    assert np.abs(edge - colour).sum(axis=1).min() < 60  # the box's coloured line (after VP8)
    assert all(frame.image is None for frame in result.frames)
    assert tempfiles.leftovers() == []
