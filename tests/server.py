"""A `bentoml serve .` subprocess for the end-to-end tests and the benchmarks that talk to the
service: start it on a free port (or take a running one's loopback URL), wait until it is
ready, measure its memory, stop it. Every wait is bounded; only loopback addresses are accepted.
"""
from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    """A TCP port nobody listens on now (tests and benchmarks never take 9000: `make serve` may be running)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_port(url: str) -> int:
    """The port of a loopback URL; any other host stops the benchmark."""
    import httpx

    parsed = httpx.URL(url)
    if parsed.host not in LOOPBACK:
        raise SystemExit("benchmark only loopback addresses")
    return parsed.port or 80


def start_server(port: int, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`bentoml serve .` (this venv's) in its own process group, output to log_path."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BENTOML_DO_NOT_TRACK": "True", **(env or {})}
    bentoml = Path(sys.executable).with_name("bentoml")
    with open(log_path, "wb") as log:
        return subprocess.Popen([str(bentoml), "serve", ".", "--port", str(port)], cwd=ROOT, env=full_env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_ready(url: str, seconds: float, alive=lambda: True) -> bool:
    """Poll url/readyz until it answers 200 (True), time runs out or alive() turns False."""
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline and alive():
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


@contextlib.contextmanager
def service(url: str | None, env: dict[str, str] | None = None, name: str = "bench", ready_s: float = 300):
    """Yield (url, port, pid, log_path) of the service: `url` as given (pid and log None),
    or a `bentoml serve` started on a free port with env, stopped on exit."""
    if url is not None:
        yield url, loopback_port(url), None, None
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}-serve-{port}.log"
    process = start_server(port, log_path, env)
    try:
        if not wait_ready(url, ready_s, alive=lambda: process.poll() is None):
            raise SystemExit(f"bentoml serve did not get ready; see {log_path}")
        yield url, port, process.pid, log_path
    finally:
        stop_server(process)


def server_rss(port: int, pid: int | None = None) -> int:
    """Resident memory of the server (the process `pid`, or the one listening on port) and
    all its descendants, in bytes."""
    import psutil

    if pid is None:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                pid = conn.pid
                root = psutil.Process(pid)
                while root.parent() is not None and "bentoml" in " ".join(root.parent().cmdline()):
                    root = root.parent()  # up to `bentoml serve`, so every worker is counted
                pid = root.pid
                break
    if pid is None:
        return 0
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
