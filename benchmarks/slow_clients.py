"""Slow clients vs normal traffic, against a running service (loopback only, bounded).

    .venv/bin/python benchmarks/slow_clients.py --port 9000 --slow 40 --concurrency 4

Opens --slow connections that send headers and then trickle their body at 1 byte/s, and
meanwhile sends a real photo at --concurrency for --seconds. Prints the normal requests'
answers and latencies, and what the slow clients got (408 incomplete_upload expected).
Measured 2026-11-26 (2-core AMD EPYC, default settings): 40 slow clients, concurrency 4:
122 of 122 normal requests answered 200 (p50 1.65 s, max 2.11 s for the 910x1137
portrait), all 40 slow clients 408.
"""
import argparse
import asyncio
import time
from pathlib import Path

import httpx

URL_HOST, PORT = "127.0.0.1", 9000
PHOTO = (Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "obama.jpg").read_bytes()

async def slow_client(i, stop):
    """Headers, then one body byte a second until answered or stop."""
    r, w = await asyncio.open_connection(URL_HOST, PORT)
    body_len = 100000
    w.write(f"POST /emotion HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {body_len}\r\n\r\n".encode())
    await w.drain()
    sent = 0
    status = None
    try:
        while time.time() < stop:
            w.write(b"x"); await w.drain(); sent += 1
            try:
                line = await asyncio.wait_for(r.readline(), timeout=1.0)
                if line:
                    status = line.decode().split()[1]; break
            except asyncio.TimeoutError:
                pass
    except (ConnectionError, OSError):
        status = status or "closed"
    w.close()
    return status

async def normal(stop, results):
    async with httpx.AsyncClient(timeout=60) as c:
        while time.time() < stop:
            t = time.time()
            try:
                resp = await c.post(f"http://{URL_HOST}:{PORT}/emotion", files={"image": ("o.jpg", PHOTO, "image/jpeg")})
                results.append((resp.status_code, time.time() - t))
            except Exception as e:
                results.append((repr(e)[:40], time.time() - t))

async def main(slow_count: int, concurrency: int, seconds: float):
    stop = time.time() + seconds + 15
    slow = [asyncio.create_task(slow_client(i, stop)) for i in range(slow_count)]
    await asyncio.sleep(3)
    results = []
    await asyncio.gather(*[normal(time.time() + seconds, results) for _ in range(concurrency)])
    statuses = await asyncio.gather(*slow)
    codes = {}
    for code, _ in results: codes[code] = codes.get(code, 0) + 1
    lat = sorted(t for _, t in results)
    print(f"normal requests at concurrency {concurrency} while {slow_count} slow clients trickle 1 B/s:", codes,
          "p50 %.2fs max %.2fs" % (lat[len(lat)//2], lat[-1]))
    sc = {}
    for s in statuses: sc[s] = sc.get(s, 0) + 1
    print("slow clients' answers:", sc)
if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=9000, help="port of the service on 127.0.0.1")
    p.add_argument("--slow", type=int, default=40, help="slow clients")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent normal requests")
    p.add_argument("--seconds", type=float, default=45, help="how long normal traffic runs")
    args = p.parse_args()
    PORT = args.port
    asyncio.run(main(args.slow, args.concurrency, args.seconds))
