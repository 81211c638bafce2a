"""Rate limiting: one shared limiter that never lets a rolling second carry more than the rate, and backs off
when SES throttles anyway (other senders may share the account).

Time is injected (`clock`, `sleep`) so the behaviour is tested deterministically.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], None]

_EPSILON = 1e-9  # seconds: float slack, more than a clock tick's rounding


class RateLimiter:
    """Paces grants of `n` units (recipients) so that SES never sees more than the rate in a rolling second.

    Two layers, both under one lock (one limiter is shared by every sending thread):
    - pacing (GCRA, no burst): grants are spaced `n / (rate * headroom)` seconds apart, so sends go out
      evenly and an idle spell never builds up a burst;
    - a guard on the moments sends are actually released: at most `floor(rate)` units in any window of
      `1 + jitter` seconds. A thread that wakes late (a GC pause, the GIL, a slow first call) would
      otherwise go out together with the next one, on time; the guard holds it back instead. The extra
      `jitter` seconds cover the time from release to SES's clock.
    With `headroom = 1 / (1 + jitter)` or less, the guard never binds on an evenly paced stream.

    Adaptive (AIMD): `on_throttle` multiplies the rate by DECREASE, at most once per COOLDOWN (a burst of
    concurrent 429s is one signal); each quiet second after that adds INCREASE of the ceiling back.
    """

    DECREASE = 0.7
    COOLDOWN = 1.0
    INCREASE = 0.05
    MIN_FACTOR = 0.05

    def __init__(
        self,
        rate: float,
        *,
        headroom: float = 0.97,
        jitter: float = 0.03,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._headroom = headroom
        self._span = 1.0 + max(0.0, jitter)  # the guard's window, seconds
        self._ceiling = rate  # the most we may ever send at
        self._factor = 1.0  # adaptive share of the ceiling, in [MIN_FACTOR, 1]
        now = clock()
        self._tat = now  # theoretical arrival time of the next grant (GCRA)
        self._last_throttle = float("-inf")
        self._last_raise = now
        self._released: deque[tuple[float, int]] = deque()  # (release time, units) within the guard's window
        self._in_window = 0
        self.throttles = 0

    # --- what the rate is now -----------------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """The pace granted now, units per second (headroom included)."""
        with self._lock:
            return self._pace()

    @property
    def ceiling(self) -> float:
        return self._ceiling

    @property
    def factor(self) -> float:
        """The adaptive share of the ceiling now (1.0 until SES throttles)."""
        with self._lock:
            return self._factor

    def _allowed(self) -> float:
        return self._ceiling * self._factor

    def _pace(self) -> float:
        return self._allowed() * self._headroom

    def set_ceiling(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        with self._lock:
            self._ceiling = rate

    # --- adaptive policy (AIMD) ---------------------------------------------------------------------------
    def on_throttle(self) -> None:
        """SES said too fast: slow down (once per cooldown) and push the next grant back."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if now - self._last_throttle >= self.COOLDOWN:
                self._factor = max(self.MIN_FACTOR, self._factor * self.DECREASE)
                self._last_throttle = now
                self._last_raise = now
                self._tat = max(self._tat, now) + 1.0 / self._pace()

    def _recover(self, now: float) -> None:
        if self._factor >= 1.0:
            self._last_raise = now
            return
        quiet = now - max(self._last_raise, self._last_throttle)
        if quiet >= 1.0:
            steps = int(quiet)
            self._factor = min(1.0, self._factor + self.INCREASE * steps)
            self._last_raise += steps

    # --- granting -----------------------------------------------------------------------------------------
    def reserve(self, n: int = 1) -> float:
        """Reserve the next paced slot for `n` units; return how long the caller must wait for it."""
        if n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._recover(now)
            start = max(now, self._tat)
            self._tat = start + n / self._pace()
            return start - now

    def _try_release(self, n: int) -> float:
        """Record a release of `n` units now if the guard's window has room; else the seconds to wait."""
        now = self._clock()
        released = self._released
        while released and now - released[0][0] >= self._span:
            self._in_window -= released.popleft()[1]
        cap = max(n, math.floor(self._allowed() + _EPSILON))
        if self._in_window + n <= cap:
            released.append((now, n))
            self._in_window += n
            return 0.0
        excess, freed = self._in_window + n - cap, 0
        for at, units in released:
            freed += units
            if freed >= excess:
                return max(at + self._span - now, 0.0) + _EPSILON  # a hair late: float sums can fall short
        return _EPSILON  # pragma: no cover - the loop always reaches `excess`

    def admit(self, n: int = 1) -> float:
        """Block until the guard lets `n` units go out now (call it right before sending); return the
        seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                delay = self._try_release(n)
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def acquire(self, n: int = 1) -> float:
        """Block until `n` units may be sent now: the paced slot, then the guard. Returns the seconds waited."""
        if n <= 0:
            return 0.0
        waited = self.reserve(n)
        if waited > 0:
            self._sleep(waited)
        return waited + self.admit(n)


class Unlimited:
    """A limiter that never waits (offline dry runs)."""

    rate = float("inf")
    ceiling = float("inf")
    factor = 1.0
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
