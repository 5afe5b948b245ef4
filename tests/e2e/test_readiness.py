"""/readyz answers from the model worker's last known state (emotionlib/readiness.py), so it
answers at once in every state; its timing is measured by benchmarks/readyz.py.
(emotionlib/serving/readiness.py)"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import psutil

from emotionlib.serving.readiness import ModelProbe
from tests.helpers import Served


def test_probe_follows_the_worker():
    state = {"answer": True}

    async def answers(timeout_s):
        if state["answer"] is None:  # a worker that accepted the connection and never answers
            await asyncio.sleep(60)
        return state["answer"]

    async def scenario():
        probe = ModelProbe(answers, interval_s=0.05, timeout_s=0.1)
        assert not probe.ready  # nothing known yet
        await probe.start()
        assert probe.ready  # known once started
        state["answer"] = None
        await asyncio.sleep(0.4)  # past interval + timeout
        assert not probe.ready
        state["answer"] = True
        await asyncio.sleep(0.2)
        assert probe.ready
        state["answer"] = False  # the worker's /readyz said 503
        await asyncio.sleep(0.4)
        assert not probe.ready
        probe.saw_answer()  # a real call was answered
        assert probe.ready
        await probe.stop()

    asyncio.run(scenario())


def model_worker(server: Served):
    for child in psutil.Process(server.process.pid).children():
        if child.status() != psutil.STATUS_ZOMBIE and "--service-name emotion_model" in " ".join(child.cmdline()):
            return child
    return None


def test_readyz_answers_503_while_the_model_worker_is_down(bundled_model_store, tmp_path):
    """A dedicated server: its model worker killed, /readyz says 503 without waiting for
    it, then 200 once BentoML has started a new one (within its 10 s check plus start-up)."""
    server = Served(bundled_model_store, tmp_path / "serve.log")
    try:
        server.wait_ready()
        killed = model_worker(server)
        os.kill(killed.pid, signal.SIGKILL)
        seen, deadline = [], time.monotonic() + 120
        with httpx.Client(timeout=2) as client:  # BentoML's own probe took 5 s to say 503
            while time.monotonic() < deadline:
                seen.append(client.get(f"{server.url}/readyz").status_code)
                if 503 in seen and seen[-1] == 200:
                    break
                time.sleep(0.1)
        assert 503 in seen and seen[-1] == 200, seen
        assert model_worker(server).pid != killed.pid
    finally:
        server.stop()
