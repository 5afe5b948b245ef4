"""Load benchmark against a running service: latency, throughput and memory growth.

    make serve &                      # or bentoml serve . --port 9000
    .venv/bin/python benchmarks/load.py --requests 400 --concurrency 8

Sends real photos concurrently (bounded count and time, loopback only), prints latency
percentiles, requests/s and faces/s, errors, and the resident memory of the server's
processes before and after (a leak shows as steady growth across repeated runs).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: server helpers live in tests/
from tests.server import server_rss  # noqa: E402  (every server process, not just the listening one)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def payloads() -> list[tuple[str, bytes, int]]:
    """(name, jpeg bytes, expected faces): one portrait, two portraits, a 4x4 grid of faces."""
    obama, biden = (Image.open(FIXTURES / f"{n}.jpg").convert("RGB") for n in ("obama", "biden"))

    def jpeg(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    pair = Image.new("RGB", (1100, 600), "white")
    pair.paste(obama.resize((480, 600)), (0, 0))
    pair.paste(biden.resize((264, 600)), (700, 0))
    face = obama.crop((342, 95, 642, 395)).resize((100, 100))
    grid = Image.new("RGB", (4 * 120, 4 * 130), "white")
    for i in range(16):
        grid.paste(face, (10 + (i % 4) * 120, 10 + (i // 4) * 130))
    return [("portrait", (FIXTURES / "obama.jpg").read_bytes(), 1), ("pair", jpeg(pair), 2), ("grid16", jpeg(grid), 16)]


async def run(url: str, n: int, concurrency: int, payload, deadline: float):
    latencies, faces, errors = [], 0, 0
    queue = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client):
        nonlocal faces, errors
        while time.time() < deadline:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            name, data, _ = payload
            started = time.perf_counter()
            response = await client.post(f"{url}/emotion", files={"image": (f"{name}.jpg", data, "image/jpeg")})
            latencies.append(time.perf_counter() - started)
            if response.status_code == 200:
                faces += len(response.json())
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, faces, errors, elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:9000", help="a loopback URL of the running service")
    p.add_argument("--requests", type=int, default=200, help="requests per payload")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=300, help="stop each payload's run after this long")
    args = p.parse_args()
    host = httpx.URL(args.url).host
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("benchmark only loopback addresses")
    port = httpx.URL(args.url).port or 80
    rss_before = server_rss(port)
    print(f"{'payload':<10}{'req':>6}{'err':>5}{'req/s':>8}{'faces/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'RSS MiB':>9}")
    for payload in payloads():
        latencies, faces, errors, elapsed = asyncio.run(
            run(args.url, args.requests, args.concurrency, payload, time.time() + args.max_seconds))
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        print(f"{payload[0]:<10}{len(latencies):>6}{errors:>5}{len(latencies) / elapsed:>8.1f}"
              f"{faces / elapsed:>9.1f}{q[49] * 1000:>9.0f}{q[94] * 1000:>9.0f}{q[98] * 1000:>9.0f}"
              f"{server_rss(port) / 2**20:>9.0f}")
    rss_after = server_rss(port)
    time.sleep(3)  # the API worker gives memory back after a quiet second (emotionlib/serving/memory.py)
    rss_idle = server_rss(port)
    if rss_before:
        print(f"server RSS (all processes): {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after "
              f"({(rss_after - rss_before) / 2**20:+.0f} MiB), {rss_idle / 2**20:.0f} MiB 3 s later")


if __name__ == "__main__":
    main()
