"""Suppression at scale: the call count for N recipients and S suppressed addresses, on an in-memory fake
that counts the SES calls a real adapter would make (one per listing page, one per lookup)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sender import suppression
from sender.suppression import PER_RECIPIENT_MAX, choose_checker, known_list_size

PAGE = 1000
T0 = datetime(2026, 12, 1, tzinfo=UTC)


class FakeSuppressionList:
    """The suppression-list calls of SesAdapter: pages are requested lazily, as the real generator does."""

    region = "us-west-2"

    def __init__(self, size: int = 0) -> None:
        self.entries: dict[str, tuple[str, datetime]] = {
            f"gone{i:06d}@example.com": ("BOUNCE", T0) for i in range(size)
        }
        self.list_calls = 0
        self.get_calls = 0
        self.start_dates: list[datetime | None] = []

    @property
    def calls(self) -> int:
        return self.list_calls + self.get_calls

    def suppress(self, email: str, reason: str = "COMPLAINT", at: datetime | None = None) -> None:
        self.entries[email] = (reason, at or datetime.now(UTC))

    def iter_suppressed_destinations(self, *, start_date: datetime | None = None, page_size: int = PAGE
                                     ) -> Iterator[dict[str, Any]]:
        rows = sorted((e, r, t) for e, (r, t) in self.entries.items() if start_date is None or t >= start_date)
        for start in range(0, max(1, len(rows)), page_size):
            self.list_calls += 1
            self.start_dates.append(start_date)
            for email, reason, at in rows[start : start + page_size]:
                yield {"EmailAddress": email, "Reason": reason, "LastUpdateTime": at}

    def get_suppressed_destination(self, email: str) -> dict[str, Any] | None:
        self.get_calls += 1
        found = self.entries.get(email.lower())
        return None if found is None else {"EmailAddress": email, "Reason": found[0], "LastUpdateTime": found[1]}


def recipients(n: int, suppressed_every: int = 0) -> list[str]:
    """`n` addresses; every `suppressed_every`-th one is on the fake's list (gone000000, gone000001, ...)."""
    out = []
    for i in range(n):
        if suppressed_every and i % suppressed_every == 0:
            out.append(f"gone{i // suppressed_every:06d}@example.com")
        else:
            out.append(f"crew{i}@example.com")
    return out


def run(ses: FakeSuppressionList, emails: list[str]) -> tuple[Any, set[str]]:
    checker = choose_checker(ses, len(emails))  # type: ignore[arg-type]
    hits = {e for e in emails if checker.check(e) is not None}
    return checker, hits


def pages(s: int) -> int:
    return max(1, math.ceil(s / PAGE))


GRID = [(s, n) for s in (0, 7, 999, 1000, 1001, 12_345) for n in (1, 3, 25, 26, 40, 400, 3000)]


@pytest.mark.parametrize(("s", "n"), GRID)
def test_first_blast_calls_stay_within_min_of_n_and_pages_plus_a_constant(s: int, n: int) -> None:
    ses = FakeSuppressionList(s)
    checker, _ = run(ses, recipients(n))
    assert ses.calls <= min(n, pages(s)) + PER_RECIPIENT_MAX
    assert checker.calls == ses.calls  # the response reports the calls really made


@pytest.mark.parametrize(("s", "n"), GRID)
def test_once_s_is_known_calls_are_min_of_n_and_pages_plus_one(s: int, n: int) -> None:
    ses = FakeSuppressionList(s)
    choose_checker(ses, 10 * PAGE)  # type: ignore[arg-type]  # an earlier, long blast listed everything
    suppression._snapshots.clear()  # its snapshot has expired (e.g. a new process would have neither)...
    assert suppression._sizes  # ...but S is remembered
    before = ses.calls
    checker, _ = run(ses, recipients(n))
    assert ses.calls - before <= min(n, pages(s)) + 1
    assert checker.calls == ses.calls - before


def test_a_list_far_longer_than_the_blast_is_abandoned_after_n_pages() -> None:
    s, n = 40 * PAGE, 30  # ceil(S/P) = 40 pages > N = 30 > PER_RECIPIENT_MAX, S unknown
    ses = FakeSuppressionList(s)
    checker, hits = run(ses, recipients(n, suppressed_every=3))
    assert ses.list_calls == n and ses.get_calls == n  # the worst case, 2N, and no page beyond the budget
    assert checker.strategy.startswith("per-recipient (listing abandoned")
    assert hits == {e for e in recipients(n, suppressed_every=3) if e.startswith("gone")}
    # The next blast knows the list is over N pages and goes straight to per-recipient lookups.
    again = FakeSuppressionList(s)
    again_checker, _ = run(again, recipients(n))
    assert again.list_calls == 0 and again.get_calls == n and again_checker.strategy == "per-recipient"


@pytest.mark.parametrize(("s", "n"), [(0, 3), (10, 25), (2500, 200), (12_345, 5000), (40 * PAGE, 30)])
def test_every_strategy_finds_every_suppressed_recipient(s: int, n: int) -> None:
    ses = FakeSuppressionList(s)
    emails = recipients(n, suppressed_every=4)
    _, hits = run(ses, emails)
    assert hits == {e for e in emails if e.startswith("gone") and e in ses.entries}


def test_warm_snapshot_is_refreshed_incrementally_in_one_call_and_sees_new_entries() -> None:
    ses = FakeSuppressionList(2500)
    run(ses, recipients(400))
    assert ses.list_calls == 3 and ses.start_dates == [None] * 3
    ses.suppress("crew7@example.com")  # a complaint arrives between two blasts
    checker, hits = run(ses, recipients(400))
    assert checker.strategy == "snapshot-incremental" and checker.calls == 1
    assert ses.start_dates[-1] is not None  # StartDate: only what changed since the last listing
    assert "crew7@example.com" in hits
    assert known_list_size(ses) == 2501  # type: ignore[arg-type]


def test_old_snapshot_is_rebuilt_in_full_to_catch_removals() -> None:
    ses = FakeSuppressionList(1500)
    now = [0.0]
    choose_checker(ses, 400, clock=lambda: now[0])  # type: ignore[arg-type]
    del ses.entries["gone000001@example.com"]  # removed from the list: StartDate cannot show that
    now[0] += suppression.SNAPSHOT_MAX_AGE + 1
    checker = choose_checker(ses, 400, clock=lambda: now[0])  # type: ignore[arg-type]
    assert checker.strategy == "snapshot" and ses.start_dates[-1] is None
    assert checker.check("gone000001@example.com") is None
    assert checker.check("gone000002@example.com") is not None


def test_streamed_list_of_unknown_length_reads_the_snapshot() -> None:
    ses = FakeSuppressionList(1500)
    checker = choose_checker(ses, None)  # type: ignore[arg-type]
    assert checker.strategy == "snapshot" and ses.calls == 2


def test_empty_blast_makes_no_call() -> None:
    ses = FakeSuppressionList(1500)
    checker = choose_checker(ses, 0)  # type: ignore[arg-type]
    assert ses.calls == 0 and checker.calls == 0


def test_incremental_refresh_over_budget_drops_the_snapshot_and_looks_up_each_recipient() -> None:
    ses = FakeSuppressionList(0)
    run(ses, recipients(100))  # S = 0: one page, snapshot warm
    for i in range(3 * PAGE):
        ses.suppress(f"new{i}@example.com", at=T0 + timedelta(days=30))
    checker, _ = run(ses, recipients(2))  # changes span 3 pages; looking up 2 recipients is cheaper
    assert checker.calls <= 2 + 2
    assert "per-recipient" in checker.strategy
    assert not suppression._snapshots  # a half-read refresh is not kept
