"""Memory under bursts of large uploads (a benchmark that prints numbers, not a test).

Against a running server (`make serve`, or `bentoml serve . --port N`):

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
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

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


async def burst(url: str, data: bytes, concurrency: int, headers: dict) -> Counter:
    async with httpx.AsyncClient(timeout=300, headers=headers,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one():
            try:
                response = await client.post(f"{url}/emotion", files={"image": ("big.jpg", data, "image/jpeg")})
                return str(response.status_code)
            except httpx.HTTPError as error:
                return type(error).__name__

        return Counter(await asyncio.gather(*(one() for _ in range(concurrency))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:9000")
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--side", type=int, default=2963)
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after each burst")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()

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
