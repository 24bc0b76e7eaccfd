"""A warning that a flood would repeat thousands of times a second, logged at most once per
interval with the count since the last line (a log line is itself load on a busy process)."""

import logging
import threading
import time
from collections.abc import Callable


class ThrottledLog:
    """Counts occurrences of one event and logs at most one line per `interval` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._level = level
        self._interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._unlogged = 0
        self.total = 0

    def occurred(self, message: str, *args: object, count: int = 1) -> bool:
        """Count `count` occurrences; log `message` (with `args`, as logging formats them) and
        the counts when the interval has passed since the last line (True then)."""
        with self._lock:
            self.total += count
            self._unlogged += count
            now = self._clock()
            if now - self._last < self._interval:
                return False
            self._last = now
            unlogged, self._unlogged = self._unlogged, 0
            total = self.total
        suffix = " (%d since the last such line, %d in all)"
        self._logger.log(self._level, message + suffix, *args, unlogged, total)
        return True
