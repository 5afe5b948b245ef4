"""/readyz answer time in every state, and how fast a killed worker is back.

    python benchmarks/readyz.py                       # 200 probes up, then kill each worker 3 times
    python benchmarks/readyz.py --probes 20 --kills 1 # brief

Starts `bentoml serve .` on a free port (tests/server.py). States: the service up
(``--probes`` sequential GET /readyz); the model worker killed (SIGKILL); the API worker
killed. After each kill, /readyz is asked every ``--every-ms`` until it answers 200 again
(each answer waited for up to ``--timeout-s``), and the worker processes are watched.
Prints, per state: the probes' statuses and answer times (median, 95th percentile, max);
per kill: when BentoML's arbiter started the new process, when /readyz first said 503 and
when it said 200 again (seconds after the kill).

What bounds a restart: BentoML's arbiter (circus) looks for dead workers only every
``check_delay`` seconds (BentoML passes 10: bentoml/_internal/utils/circus/__init__.py
``create_standalone_arbiter``), then the new process imports the service and loads the
model. Inside a container BentoML does not restart workers at all (``respawn`` is off when
BENTOML_CONTAINERIZED is set: bentoml/serving.py ``create_watcher``): the server stops and
the container's restart policy starts it again.
Needs a quiet CPU for numbers worth keeping.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: server helpers live in tests/

from tests.server import cpu_model, service  # noqa: E402

WORKERS = {"model": "emotion_model", "api": "emotion_api"}


def worker(server_pid: int, name: str):
    """The live (not zombie) worker process of service `name` under the server, or None."""
    import psutil

    for child in psutil.Process(server_pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and f"--service-name {name}" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def probe(client, url: str) -> tuple[object, float]:
    """(status or exception name, seconds) of one GET /readyz."""
    import httpx

    started = time.perf_counter()
    try:
        status: object = client.get(f"{url}/readyz").status_code
    except httpx.HTTPError as error:
        status = type(error).__name__
    return status, time.perf_counter() - started


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank
    return {"n": len(ordered), "median_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * p95, 1), "max_ms": round(1000 * ordered[-1], 1)}


def statuses(results) -> dict:
    counts: dict = {}
    for status, _ in results:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def kill_and_watch(client, url: str, server_pid: int, which: str, every_s: float, limit_s: float) -> dict:
    """SIGKILL the worker, probe until /readyz is 200 again; the timeline and the probes."""
    old = worker(server_pid, WORKERS[which])
    if old is None:
        raise SystemExit(f"no {which} worker under {server_pid}")
    killed = time.monotonic()
    os.kill(old.pid, signal.SIGKILL)
    respawned = first_503 = back = None
    results = []
    while time.monotonic() - killed < limit_s:
        status, seconds = probe(client, url)
        at = time.monotonic() - killed
        results.append((status, seconds))
        new = worker(server_pid, WORKERS[which])
        if respawned is None and new is not None and new.pid != old.pid:
            respawned = at
        if first_503 is None and status != 200:
            first_503 = at
        if status == 200 and (first_503 is not None or respawned is not None):
            back = at
            break
        time.sleep(every_s)
    return {"worker": which, "respawned_s": respawned and round(respawned, 2),
            "first_non_200_s": first_503 and round(first_503, 2), "ready_again_s": back and round(back, 2),
            "statuses": statuses(results), "answer": summary([s for _, s in results])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=200, help="probes while up")
    parser.add_argument("--kills", type=int, default=3, help="kills of each worker")
    parser.add_argument("--every-ms", type=float, default=50)
    parser.add_argument("--timeout-s", type=float, default=10, help="client timeout per probe")
    parser.add_argument("--limit-s", type=float, default=90, help="give up on a kill after this long")
    args = parser.parse_args(argv)
    import httpx

    report = {"cpu": cpu_model(), "cores": os.cpu_count()}
    with service(None, name="readyz") as (url, _port, pid, _log), httpx.Client(timeout=args.timeout_s) as client:
        up = [probe(client, url) for _ in range(args.probes)]
        report["up"] = {"statuses": statuses(up), "answer": summary([s for _, s in up])}
        report["kills"] = []
        for _ in range(args.kills):
            for which in ("model", "api"):
                report["kills"].append(kill_and_watch(client, url, pid, which, args.every_ms / 1000, args.limit_s))
                time.sleep(2)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
