"""Memory under bursts of large uploads, and under the worst allowed images on every endpoint
(a benchmark that prints numbers, not a test).

Worst case (issue 16: the README's memory bound, checked): starts `bentoml serve .` on a free
port with the default settings (or uses --url), then for each endpoint sends --concurrency
(32) concurrent requests of the worst image the limits allow: a 7071x7071 PNG (50 M pixels,
EMOTION_MAX_IMAGE_PIXELS) in the mode that takes the most memory to decode (RGBA; a few
hundred KB compressed), with detect=false on /emotion/annotate (the whole image is one face,
so it is drawn on), and 16 of them per /emotion/batch request (EMOTION_MAX_BATCH_IMAGES).
Prints the server's total memory (every process) when idle (after one small request per
endpoint), its peak during each burst, the answers by status, and the total --settle (30)
seconds after the last burst:

    .venv/bin/python benchmarks/memory_burst.py --worst
    .venv/bin/python benchmarks/memory_burst.py --worst --concurrency 4 --batch-images 2   # brief

Bursts of photos against a running server (`make serve`, or `bentoml serve . --port N`):

    .venv/bin/python benchmarks/memory_burst.py --url http://127.0.0.1:9000

sends --bursts bursts of --concurrency concurrent ~8 MB JPEGs (a --side x --side photo
with fine noise, so it does not compress), waits --settle seconds after each burst, and
prints the resident memory (RSS) of every server process: before, after each burst and
the peak seen while sampling every 0.1 s. Answer counts by status show how many were
served and how many refused as overloaded (503) at the configured limits.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: server helpers live in tests/
from tests.fuzzing import png_image  # noqa: E402
from tests.server import cpu_model, service  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
MIB = 1024 * 1024


def big_jpeg(side: int, target_mb: float) -> bytes:
    """The portrait scaled to side x side with noise, at the JPEG quality that reaches ~target_mb."""
    photo = Image.open(FIXTURES / "obama.jpg").convert("RGB").resize((side, side))
    noise = np.random.default_rng(0).normal(0, 24, (side, side, 3))
    noisy = Image.fromarray(np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8))
    for quality in (80, 85, 90, 93, 95, 97, 98):
        buffer = io.BytesIO()
        noisy.save(buffer, "JPEG", quality=quality)
        if buffer.tell() >= target_mb * 1e6:
            break
    return buffer.getvalue()


def server_processes(port: int) -> list[psutil.Process]:
    """Every process of the server listening on port: from the `bentoml serve` process
    (the listener's oldest ancestor running bentoml) down to all its workers."""
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            root = psutil.Process(conn.pid)
            for parent in root.parents():
                if any("bentoml" in part for part in parent.cmdline()):
                    root = parent
            return [root, *root.children(recursive=True)]
    raise SystemExit(f"no process listens on port {port}")


def label(process: psutil.Process) -> str:
    try:
        cmd = " ".join(process.cmdline())
    except psutil.Error:
        return f"pid {process.pid}"
    for hint in ("emotion_model", "emotion_api", "--worker-id", "serve"):
        if hint in cmd:
            return f"pid {process.pid} ({hint})"
    return f"pid {process.pid}"


class Sampler(threading.Thread):
    """Samples the RSS of the server processes; keeps the peak total and per process."""

    def __init__(self, processes):
        super().__init__(daemon=True)
        self.processes, self.peak_total, self.peak = processes, 0, {}
        self.running = True

    def rss(self) -> dict[int, int]:
        out = {}
        for process in self.processes:
            try:
                out[process.pid] = process.memory_info().rss
            except psutil.Error:
                out[process.pid] = 0
        return out

    def run(self):
        while self.running:
            now = self.rss()
            self.peak_total = max(self.peak_total, sum(now.values()))
            for pid, value in now.items():
                self.peak[pid] = max(self.peak.get(pid, 0), value)
            time.sleep(0.1)


def show(title: str, rss: dict[int, int], processes) -> None:
    parts = ", ".join(f"{label(p)} {rss.get(p.pid, 0) / MIB:,.0f}" for p in processes)
    print(f"{title:<16} total {sum(rss.values()) / MIB:7,.0f} MiB   [{parts}]")


async def burst(url: str, data: bytes, concurrency: int, headers: dict, route: str = "/emotion",
                photos: int = 1, form: dict | None = None, name: str = "big.jpg") -> Counter:
    """concurrency requests at once; their answers by status (and error code for 4xx/5xx)."""
    field = "images" if route.endswith("batch") else "image"
    async with httpx.AsyncClient(timeout=300, headers=headers,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one():
            try:
                response = await client.post(f"{url}{route}", files=[(field, (name, data, "image/png"))] * photos,
                                             data=form)
            except httpx.HTTPError as error:
                return type(error).__name__
            if response.status_code >= 400:
                return f"{response.status_code} {response.json().get('code')}"
            if route.endswith("batch"):  # each photo's own answer
                return "200 " + ",".join(sorted({"faces" if "faces" in e else e["code"] for e in response.json()}))
            return str(response.status_code)

        return Counter(await asyncio.gather(*(one() for _ in range(concurrency))))


def worst_image(side: int) -> bytes:
    """A side x side RGBA PNG of zeros: Pillow holds 4 bytes per pixel of it, the most of any
    accepted mode (decoding took 8.1-8.3 bytes per pixel at the peak, tests/serving/test_budget.py)."""
    return png_image(side, side, 6)


def worst_case(args) -> None:
    data = worst_image(args.worst_side)
    small = png_image(64, 64, 6)
    endpoints = [("/emotion", 1, None), ("/emotion/annotate", 1, {"detect": "false"}),
                 ("/emotion/batch", args.batch_images, None)]
    print(f"{cpu_model()}, {psutil.cpu_count()} cores; worst image: {args.worst_side}x{args.worst_side} RGBA PNG, "
          f"{len(data) / 1e3:,.0f} KB; {args.concurrency} concurrent requests per endpoint")
    with service(args.url, name="memory") as (url, port, _pid, _log):
        processes = server_processes(port)
        for route, photos, form in endpoints:  # everything a request loads once is loaded now
            asyncio.run(burst(url, small, 1, {}, route, photos, form, "small.png"))
        time.sleep(args.settle)
        sampler = Sampler(processes)
        idle = sampler.rss()
        show("idle", idle, processes)
        for route, photos, form in endpoints:
            sampler = Sampler(processes)
            sampler.start()
            started = time.perf_counter()
            answers = asyncio.run(burst(url, data, args.concurrency, {}, route, photos, form, "worst.png"))
            took = time.perf_counter() - started
            sampler.running = False
            sampler.join()
            show(f"peak {route}", sampler.peak, processes)
            print(f"{'':16} peak total {sampler.peak_total / MIB:,.0f} MiB; answers {dict(answers)} in {took:.1f} s")
        time.sleep(args.settle)
        after = Sampler(processes).rss()
        show(f"{args.settle:g} s later", after, processes)
        print(f"after / idle: {sum(after.values()) / max(1, sum(idle.values())):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worst", action="store_true", help="the worst allowed image on every endpoint")
    parser.add_argument("--worst-side", type=int, default=7071, help="--worst: the image's side (50 M pixels)")
    parser.add_argument("--batch-images", type=int, default=16, help="--worst: photos per /emotion/batch request")
    parser.add_argument("--url", default=None, help="a running server (default: --worst starts one; bursts use "
                                                    "http://127.0.0.1:9000)")
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=None, help="requests at once (64; --worst: 32)")
    parser.add_argument("--side", type=int, default=2963)
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--settle", type=float, default=None, help="seconds to wait after each burst (10; --worst: "
                                                                  "30, before the idle reading and after the bursts)")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    if args.worst:
        args.concurrency, args.settle = args.concurrency or 32, 30.0 if args.settle is None else args.settle
        return worst_case(args)
    args.url, args.concurrency = args.url or "http://127.0.0.1:9000", args.concurrency or 64
    args.settle = 10.0 if args.settle is None else args.settle

    data = big_jpeg(args.side, args.megabytes)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    processes = server_processes(int(args.url.rsplit(":", 1)[1].split("/")[0]))
    print(f"payload: {args.side}x{args.side} JPEG, {len(data) / 1e6:.1f} MB; {args.bursts} bursts of "
          f"{args.concurrency} concurrent requests; {len(processes)} server processes")
    sampler = Sampler(processes)
    before = sampler.rss()
    show("before", before, processes)
    sampler.start()
    for number in range(1, args.bursts + 1):
        started = time.perf_counter()
        answers = asyncio.run(burst(args.url, data, args.concurrency, headers))
        took = time.perf_counter() - started
        time.sleep(args.settle)
        show(f"after burst {number}", sampler.rss(), processes)
        print(f"{'':16} answers {dict(answers)} in {took:.1f} s")
    sampler.running = False
    sampler.join()
    show("peak (each)", sampler.peak, processes)
    after = sampler.rss()
    print(f"peak total {sampler.peak_total / MIB:,.0f} MiB; after/before total "
          f"{sum(after.values()) / max(1, sum(before.values())):.2f}")


if __name__ == "__main__":
    main()
