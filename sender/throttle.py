"""Rate limiting: a shared pacer that never lets a rolling second carry more than the rate, and backs off
when SES throttles anyway (other senders may share the account).

Time is injected (`clock`, `sleep`) so the behaviour is tested deterministically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class RateLimiter:
    """GCRA pacing with no burst: grants of `n` units are spaced `n / rate` seconds apart.

    With no burst allowance a rolling one-second window holds at most `rate` units of grants, so the only
    way to exceed SES's MaxSendRate is jitter between the grant and the request reaching SES; `headroom`
    (a factor below 1) absorbs that. Thread-safe: one limiter is shared by every sending thread.
    """

    def __init__(
        self,
        rate: float,
        *,
        headroom: float = 0.97,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._headroom = headroom
        self._ceiling = rate  # the most we may ever send at
        self._factor = 1.0  # adaptive share of the ceiling, in (0, 1]
        self._tat = clock()  # theoretical arrival time of the next grant
        self._last_throttle = float("-inf")
        self._last_raise = clock()
        self.throttles = 0

    # --- adaptive policy: multiplicative decrease, additive increase (AIMD) ---------------------------
    DECREASE = 0.7  # on throttle, the factor is multiplied by this...
    COOLDOWN = 1.0  # ...at most once a second (a burst of concurrent 429s is one signal)
    INCREASE = 0.05  # each quiet second adds this much of the ceiling back
    MIN_FACTOR = 0.05

    @property
    def rate(self) -> float:
        """The rate granted now, units per second."""
        with self._lock:
            return self._current_rate()

    @property
    def ceiling(self) -> float:
        return self._ceiling

    def _current_rate(self) -> float:
        return self._ceiling * self._factor * self._headroom

    def set_ceiling(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        with self._lock:
            self._ceiling = rate

    def on_throttle(self) -> None:
        """SES said too fast: slow down (once per cooldown) and push the next grant back."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if now - self._last_throttle >= self.COOLDOWN:
                self._factor = max(self.MIN_FACTOR, self._factor * self.DECREASE)
                self._last_throttle = now
                self._last_raise = now
                self._tat = max(self._tat, now) + 1.0 / self._current_rate()

    def _recover(self, now: float) -> None:
        if self._factor >= 1.0:
            self._last_raise = now
            return
        quiet = now - max(self._last_raise, self._last_throttle)
        if quiet >= 1.0:
            steps = int(quiet)
            self._factor = min(1.0, self._factor + self.INCREASE * steps)
            self._last_raise += steps

    def reserve(self, n: int = 1) -> float:
        """Reserve `n` units; return how long the caller must wait before using them."""
        if n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._recover(now)
            start = max(now, self._tat)
            self._tat = start + n / self._current_rate()
            return start - now

    def acquire(self, n: int = 1) -> float:
        """Block until `n` units may be sent; return the seconds waited."""
        wait = self.reserve(n)
        if wait > 0:
            self._sleep(wait)
        return wait


class Unlimited:
    """A limiter that never waits (offline dry runs)."""

    rate = float("inf")
    ceiling = float("inf")
    throttles = 0

    def acquire(self, n: int = 1) -> float:
        return 0.0

    def reserve(self, n: int = 1) -> float:
        return 0.0

    def on_throttle(self) -> None:
        self.throttles += 1

    def set_ceiling(self, rate: float) -> None:
        return None


class Pacer:
    """A small token bucket for SES management calls (about 1 request/s per account, small bursts)."""

    def __init__(
        self, rate: float = 1.0, burst: int = 2, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def wait(self) -> float:
        if self._rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            self._tokens -= 1.0
            delay = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        if delay > 0:
            self._sleep(delay)
        return delay
