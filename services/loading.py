"""Model loading off the event loop, so `/readyz` answers 503 while the weights load."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import bentoml

from fashion_studio.errors import ModelNotFoundError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class BackgroundLoad(Generic[T]):
    def __init__(self, name: str, load: Callable[[], T], wait_s: float = 0.0) -> None:
        self.name = name
        self.wait_s = wait_s
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(load,), name=f"load-{name}", daemon=True).start()

    def _run(self, load: Callable[[], T]) -> None:
        deadline = time.monotonic() + self.wait_s
        try:
            while True:
                try:
                    self._value = load()
                    break
                except ModelNotFoundError as exc:
                    if time.monotonic() >= deadline:
                        raise
                    logger.warning("%s: %s; waiting for it (up to %.0f s more)", self.name, exc, deadline - time.monotonic())
                    time.sleep(1.0)
            logger.info("%s loaded", self.name)
        except BaseException as exc:  # reported through readiness and every call
            logger.exception("%s failed to load", self.name)
            self._error = exc
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self._error is None

    def wait(self) -> T:
        """The value once loading has ended (its error if it failed): for a load that builds on another."""
        self._done.wait()
        return self.get()

    def get(self) -> T:
        if not self._done.is_set():
            raise bentoml.exceptions.ServiceUnavailable(f"{self.name} is still loading; retry when /readyz answers 200")
        if self._error is not None:
            raise bentoml.exceptions.ServiceUnavailable(f"{self.name} failed to load: {self._error}")
        assert self._value is not None
        return self._value
