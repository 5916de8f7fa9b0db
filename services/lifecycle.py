"""Readiness and shutdown: the gateway drains on SIGTERM, and each model service outlives it.

SIGTERM reaches every process of the deployment at once. The gateway stops taking work (503, `/readyz`
503), gives accepted requests `shutdown_grace_s`, then cuts what still runs with 503. A model service
keeps serving while a gateway worker is alive, since an accepted request may still need a model call
(generate, then score); each model service installs that behaviour itself with `outlive_gateway`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fashion_studio import metrics
from fashion_studio.settings import get_settings

logger = logging.getLogger(__name__)
SETTINGS = get_settings()
# The name of the gateway service (services/gateway.py); model services look for its workers.
GATEWAY_NAME = "studio"


@dataclass
class Traffic:
    """What the gateway is doing: requests in flight, those queued for a slot, and, after SIGTERM,
    draining.

    A request that finds every slot taken waits in a short first-come queue rather than being turned
    away at once: a slot that frees goes straight to the head of the queue, whose body is already
    read, so the model's batch stays full without clients' retries (each a round trip the gateway
    answers with 429 on the same cores as the models). Past the queue's length, or its wait, the
    request is shed with 429 as before.
    """

    in_flight: int = 0
    draining: bool = False
    cut: bool = False
    tasks: set[asyncio.Task] = field(default_factory=set)
    waiting: deque[asyncio.Future[bool]] = field(default_factory=deque)

    async def take_slot(self, slots: int, queue: int, wait_s: float) -> bool:
        """Take one of `slots`, queueing for at most `wait_s` behind at most `queue` others; False
        when none came (queue full, wait over, or draining). Every True is matched by `free_slot()`."""
        if self.in_flight < slots and not self.waiting:
            self.in_flight += 1
            return True
        if len(self.waiting) >= queue or wait_s <= 0 or self.draining:
            return False
        handed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append(handed)
        queued = metrics.QUEUED.labels(service=GATEWAY_NAME)
        queued.inc()
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(handed)
        except TimeoutError:
            if handed.done():  # a slot came as the wait ended: it is this request's
                return handed.result()
            handed.cancel()
            return False
        except asyncio.CancelledError:  # the request itself is cancelled: pass on a slot it was handed
            if handed.done() and handed.result():
                self.free_slot()
            handed.cancel()
            raise
        finally:
            queued.dec()
            if handed in self.waiting:
                self.waiting.remove(handed)

    def free_slot(self) -> None:
        """Give the slot to the first request still waiting, or back to the pool."""
        while self.waiting:
            head = self.waiting.popleft()
            if not head.done():
                head.set_result(True)  # in_flight stays: the slot changes hands
                return
        self.in_flight -= 1

    def turn_away_waiting(self) -> None:
        """Draining: whoever waits for a slot gets none."""
        while self.waiting:
            head = self.waiting.popleft()
            if not head.done():
                head.set_result(False)


TRAFFIC = Traffic()


def on_sigterm(loop: asyncio.AbstractEventLoop, drain: Callable[[Any], Any], exit_within_s: float) -> None:
    """Run `drain(hand_over)` on SIGTERM instead of shutting down at once; `hand_over()` then gives the
    signal to whoever had it before (uvicorn, which closes its listeners, waits for what still runs,
    and exits), and ends the process itself if that takes longer than `exit_within_s`: by then nobody
    awaits that work. Call from the serving loop's thread, after uvicorn set its handlers (an ASGI
    lifespan startup is such a place)."""
    previous = signal.getsignal(signal.SIGTERM)
    started = False

    def force_exit() -> None:
        logger.error("still running %.0f s after the drain; exiting", exit_within_s)
        logging.shutdown()
        os._exit(0)

    def hand_over() -> None:
        loop.call_later(exit_within_s, force_exit)
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        nonlocal started
        if started:
            return
        started = True
        loop.call_soon_threadsafe(lambda: loop.create_task(drain(hand_over)))

    signal.signal(signal.SIGTERM, handler)
    parent = os.getppid()

    async def watch_parent() -> None:
        """A worker whose serving process died (SIGKILL, OOM) gets no SIGTERM: it drains on its own,
        rather than live on as an orphan holding its memory and its models."""
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        logger.error("the serving process (pid %d) is gone; shutting down as on SIGTERM", parent)
        handler(signal.SIGTERM, None)

    _WATCHERS.add(loop.create_task(watch_parent()))


# The parent watchers' tasks, referenced so that they are not collected while they run.
_WATCHERS: set[asyncio.Task] = set()


async def drain_gateway(hand_over: Callable[[], None]) -> None:
    TRAFFIC.draining = True
    TRAFFIC.turn_away_waiting()
    grace = SETTINGS.shutdown_grace_s
    deadline = time.monotonic() + grace
    logger.info("SIGTERM: taking no new work; %d request(s) in flight get up to %.0f s", TRAFFIC.in_flight, grace)
    while TRAFFIC.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if TRAFFIC.in_flight:
        logger.error("shutdown grace period over: cutting %d request(s)", TRAFFIC.in_flight)
        TRAFFIC.cut = True
        for task in list(TRAFFIC.tasks):
            task.cancel()
        cut_deadline = time.monotonic() + 5.0
        while TRAFFIC.in_flight and time.monotonic() < cut_deadline:
            await asyncio.sleep(0.05)
    logger.info("drained; shutting down")
    hand_over()


def gateway_workers(entry: str) -> list[int]:
    """Pids of this deployment's gateway workers: siblings started with `--service-name <entry>`."""
    import psutil

    pids = []
    try:
        siblings = psutil.Process(os.getppid()).children()
    except psutil.Error:
        return []
    for process in siblings:
        try:
            argv = process.cmdline()
        except psutil.Error:
            continue
        if process.pid != os.getpid() and any(a == "--service-name" and b == entry for a, b in zip(argv, argv[1:])):
            pids.append(process.pid)
    return pids


class OutliveGateway:
    """Pure ASGI, on a model service: keep serving until no gateway worker is left, or `grace_s` has
    passed, then shut down as usual, giving work that nobody awaits any more 5 s. Served on its own
    (no gateway beside it), the service shuts down at once."""

    def __init__(self, app: Any, entry: str, grace_s: float) -> None:
        self.app = app
        self.entry = entry
        self.grace_s = grace_s
        self.installed = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and not self.installed:
            self.installed = True
            on_sigterm(asyncio.get_running_loop(), self.wait_for_gateway, exit_within_s=5.0)
        await self.app(scope, receive, send)

    async def wait_for_gateway(self, hand_over: Callable[[], None]) -> None:
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline and await asyncio.to_thread(gateway_workers, self.entry):
            await asyncio.sleep(0.1)
        hand_over()


def outlive_gateway(service: Any) -> Any:
    """Give a model service (a `bentoml.service` class) the drain behaviour above; returns it."""
    service.add_asgi_middleware(OutliveGateway, entry=GATEWAY_NAME, grace_s=SETTINGS.shutdown_grace_s + 10)
    return service
