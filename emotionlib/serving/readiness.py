"""Readiness of the model worker, kept up to date in the background, so /readyz answers at once.

BentoML's /readyz asked the model worker's /readyz on every call, with a 5 s timeout
(``runner_probe``, _bentoml_impl/server/app.py ``readyz``). While that worker was down, its
socket (held by BentoML's arbiter) accepted the connection and nothing answered: each probe
of the API took seconds. Here a background task asks the model worker every ``interval_s``
(``timeout_s`` at most per question) and every answer of a real call counts too;
``ready`` is a look-up: true while the last answer is at most ``interval_s + timeout_s`` old.
A worker that stops answering is reported within that window (1.5 s by default).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

import anyio

logger = logging.getLogger("emotion")


class ModelProbe:
    """``ready``: did the model worker answer within the last ``interval_s + timeout_s``?"""

    def __init__(self, answers: Callable[[float], Awaitable[bool]], interval_s: float = 0.5,
                 timeout_s: float = 1.0):
        """answers(timeout_s): did the worker say it is ready (within timeout_s)?"""
        self.answers, self.interval_s, self.timeout_s = answers, interval_s, timeout_s
        self.last_answer: float | None = None
        self._task: asyncio.Task | None = None

    @classmethod
    def of(cls, dependency: Callable[[], object], **timing) -> "ModelProbe":
        """The probe of a ``bentoml.depends`` dependency (looked up when asked): its client's
        ``is_ready`` (the model worker's own /readyz); a service running in this process (the
        in-process test client) has none and is always ready."""
        async def answers(timeout_s: float) -> bool:
            is_ready = getattr(dependency(), "is_ready", None)
            return True if is_ready is None else await is_ready(timeout_s)

        return cls(answers, **timing)

    @property
    def ready(self) -> bool:
        return self.last_answer is not None and time.monotonic() - self.last_answer <= self.interval_s + self.timeout_s

    def saw_answer(self) -> None:
        self.last_answer = time.monotonic()

    async def check(self) -> bool:
        """Ask once; True (and remembered) when the worker answered ready within timeout_s."""
        try:
            with anyio.fail_after(self.timeout_s):
                answered = await self.answers(self.timeout_s)
        except Exception:  # noqa: BLE001 - down, refused, timed out: all mean "not now"
            answered = False
        if answered:
            self.saw_answer()
        return answered

    async def run(self) -> None:
        was_ready = None
        while True:
            answered = await self.check()
            if answered != was_ready and was_ready is not None:
                logger.warning("model worker %s", "answers again" if answered else
                               f"did not answer its readiness check within {self.timeout_s:g} s")
            was_ready = answered
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        """Ask once (so the state is known before the first request, after at most timeout_s),
        then keep asking in the background."""
        if self._task is None:
            await self.check()
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
