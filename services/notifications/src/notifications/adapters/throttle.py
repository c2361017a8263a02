"""A token bucket: at most `rate` sends a second on average (SMTP_MAX_PER_SECOND), with bursts of at most `burst`.
The delivery worker asks it before every send; the clock is injected (time.monotonic in the service, a fake in tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, *, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self._tokens = self.burst
        self._at = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it (0: at once). A reservation is never given back, so
        waits queue up in order: the n-th send of a burst waits (n - burst) / rate."""
        if self.unlimited:
            return 0.0
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
