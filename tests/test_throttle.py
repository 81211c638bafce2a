"""The rate limiter, its adaptive policy and the concurrency bound: deterministic, on an injected clock."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from sender.models import parse_event
from sender.pipeline import MAX_CONCURRENCY, Deps, default_concurrency, run_blast
from sender.recipients import InlineSource
from sender.render import Renderer
from sender.settings import PACKAGE_TEMPLATES
from sender.throttle import RateLimiter
from tests.conftest import FakeSes
from tests.standin.ses_server import rolling_peak


class FakeTime:
    """A clock that only moves when someone sleeps (or the test says so)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(rate: float, t: FakeTime, **kwargs: Any) -> RateLimiter:
    return RateLimiter(rate, clock=t.clock, sleep=t.sleep, **kwargs)


def release_times(rl: RateLimiter, t: FakeTime, count: int, n: int = 1) -> list[float]:
    times = []
    for _ in range(count):
        rl.acquire(n)
        times.append(t.now)
    return times


# --- pacing -------------------------------------------------------------------------------------------------
def test_grants_are_evenly_spaced_at_the_rate_below_the_ceiling() -> None:
    t = FakeTime()
    rl = limiter(100, t)
    times = release_times(rl, t, 50)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {round(1 / 97, 9)}  # 100/s with 0.97 headroom
    assert rl.rate == pytest.approx(97)


@pytest.mark.parametrize("rate", [1, 14, 50, 100, 1000])
def test_no_rolling_second_ever_holds_more_than_the_rate(rate: float) -> None:
    t = FakeTime()
    rl = limiter(rate, t)
    times: list[float] = []
    units: list[int] = []
    for i in range(3 * int(rate) + 10):
        if i % 7 == 0:
            t.advance(0.37)  # idle spells must not build up a burst
        n = 2 if i % 5 == 0 and rate >= 2 else 1
        rl.acquire(n)
        times.append(t.now)
        units.append(n)
    assert rolling_peak(times, units) <= rate


def test_idle_time_builds_up_no_burst() -> None:
    t = FakeTime()
    rl = limiter(10, t, headroom=1.0)
    rl.acquire()
    t.advance(60)
    times = release_times(rl, t, 3)
    assert times[1] - times[0] == pytest.approx(0.1) and times[2] - times[1] == pytest.approx(0.1)


def test_a_grant_of_several_units_takes_their_share_of_time() -> None:
    t = FakeTime()
    rl = limiter(10, t, headroom=1.0)
    rl.acquire(5)
    start = t.now
    rl.acquire(1)
    assert t.now - start == pytest.approx(0.5)


def test_late_senders_are_held_back_so_they_do_not_go_out_with_the_next_ones() -> None:
    # Five threads take their paced slots (0.0 .. 0.4); three of them wake late, all at 0.45 (a GC pause).
    t = FakeTime(0.0)
    rl = limiter(10, t, headroom=1.0, jitter=0.0)
    waits = [rl.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    released = []
    for wake in (0.0, 0.1, 0.45, 0.45, 0.45):
        t.now = max(t.now, wake)
        rl.admit()
        released.append(t.now)
    # The paced stream goes on; on its own it would put 13 releases into [0.45, 1.45).
    released += release_times(rl, t, 12)
    assert rolling_peak(released) <= 10
    assert sorted(released) == released and len(released) == 17


def test_the_guard_allows_for_jitter_between_release_and_ses() -> None:
    t = FakeTime(0.0)
    rl = limiter(10, t, headroom=1.0, jitter=0.2)
    times = release_times(rl, t, 30)
    # Any 10 + 1 consecutive releases span at least 1 + jitter seconds.
    assert min(b - a for a, b in zip(times, times[10:], strict=False)) >= 1.2 - 1e-9


def test_headroom_at_or_below_one_over_one_plus_jitter_never_triggers_the_guard() -> None:
    t = FakeTime()
    rl = limiter(100, t)  # 0.97 <= 1 / 1.03
    release_times(rl, t, 500)
    assert all(s == pytest.approx(1 / 97) for s in t.slept)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


# --- adaptive policy ------------------------------------------------------------------------------------
def test_throttle_cuts_the_rate_once_per_cooldown_however_many_429s_arrive() -> None:
    t = FakeTime()
    rl = limiter(100, t)
    for _ in range(5):
        rl.on_throttle()  # a burst of concurrent 429s: one signal
    assert rl.factor == pytest.approx(RateLimiter.DECREASE)
    assert rl.throttles == 5
    t.advance(RateLimiter.COOLDOWN)
    rl.on_throttle()
    assert rl.factor == pytest.approx(RateLimiter.DECREASE**2)


def test_throttle_pushes_the_next_grant_back() -> None:
    t = FakeTime()
    rl = limiter(10, t, headroom=1.0)
    rl.acquire()  # at t0; the next slot would be t0 + 0.1
    rl.on_throttle()
    assert rl.reserve() == pytest.approx(0.1 + 1 / 7)  # one slot at the reduced rate (7/s) is added


def test_rate_recovers_gradually_and_never_above_the_ceiling() -> None:
    t = FakeTime()
    rl = limiter(100, t, headroom=1.0)
    rl.on_throttle()
    seen = []
    for _ in range(10):
        t.advance(1.0)
        rl.reserve()
        seen.append(round(rl.factor, 6))
    assert seen[0] == pytest.approx(0.75)  # one quiet second adds INCREASE back
    assert all(b - a <= RateLimiter.INCREASE + 1e-9 for a, b in itertools.pairwise(seen))
    assert seen[-1] == 1.0 and max(seen) == 1.0
    assert rl.rate == pytest.approx(100)


def test_factor_never_falls_below_the_floor() -> None:
    t = FakeTime()
    rl = limiter(100, t)
    for _ in range(40):
        rl.on_throttle()
        t.advance(RateLimiter.COOLDOWN)
    assert rl.factor == pytest.approx(RateLimiter.MIN_FACTOR)


def test_after_a_throttle_the_guard_lets_only_the_reduced_rate_out_in_a_second() -> None:
    t = FakeTime()
    rl = limiter(100, t, headroom=1.0, jitter=0.0)
    rl.on_throttle()
    start = t.now
    admitted_at_once = 0
    while t.now == start:
        rl.admit()
        admitted_at_once += 1 if t.now == start else 0
    assert admitted_at_once == int(100 * RateLimiter.DECREASE)


# --- concurrency ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rate", "cap", "expected"),
    [(14, None, 4), (100, None, 19), (1000, None, MAX_CONCURRENCY), (1000, 8, 8), (100, 200, 19), (0.5, None, 2)],
)
def test_default_concurrency_is_rate_times_latency_capped(rate: float, cap: int | None, expected: int) -> None:
    assert default_concurrency(rate, cap) == expected


class SlowSes(FakeSes):
    """Each send takes a few milliseconds; counts how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def send(self, request: dict[str, Any]) -> str:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.004)
            with self._lock:
                return super().send(request)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_sends_in_flight_never_exceed_send_concurrency(sender_config: Any) -> None:
    ses = SlowSes()
    recipients = [{"email": f"crew{i}@example.com"} for i in range(60)]
    event = parse_event({"blast_id": "bounded", "template": "regatta-invite", "recipients": recipients,
                         "globals": {"regatta": "R", "event_date": "D", "boarding_time": "9", "dock": "C",
                                     "boat": "Jada", "booking_url": "https://x.example", "contact_email": "a@b.co"}})
    deps = Deps(config=sender_config, renderer=Renderer(PACKAGE_TEMPLATES), ses=ses,  # type: ignore[arg-type]
                open_recipients=lambda e: InlineSource(e.recipients), limiter=RateLimiter(100_000),
                send_concurrency=3)
    response = run_blast(event, deps)
    assert response["counts"]["sent"] == 60
    assert response["rate"]["concurrency"] == 3
    assert 1 <= ses.peak <= 3


def test_blasts_in_one_thread_share_one_limiter_per_rate_so_chunks_do_not_burst() -> None:
    import threading

    from sender.pipeline import limiter_for

    assert limiter_for(12.5) is limiter_for(12.5)
    assert limiter_for(12.5) is not limiter_for(13.5)
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(limiter_for(12.5)))
    t.start()
    t.join()
    assert other[0] is not limiter_for(12.5)  # another worker (thread) paces on its own
