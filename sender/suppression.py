"""The SES account-level suppression list, checked the cheaper way for each blast.

SES allows about one management request per second per account, so the number of calls matters. For N
recipients and S suppressed addresses (pages of P = 1000):
- per recipient: one GetSuppressedDestination per address, N calls;
- snapshot: one paginated ListSuppressedDestinations pass, ceil(S / P) calls (at least 1), kept in memory
  for warm invocations and refreshed incrementally (`StartDate`: about one call) while it is young.

`choose_checker` picks the cheaper from what it knows. S is unknown before a first listing, so the process
remembers it (the snapshot's size, kept even after the snapshot itself expires):
- S known: per recipient when N <= ceil(S / P), else the snapshot: min(N, ceil(S / P)) calls, +1 at most;
- S unknown: per recipient when N <= PER_RECIPIENT_MAX (at most that many calls); else a listing with a
  budget of N pages. A list longer than N pages is abandoned there and the recipients are looked up one
  by one (2N calls, the worst case, once per process: S is then known to be over N pages).
With N unknown (a streamed S3 list), the snapshot is read in full.

Memory: a snapshot holds one small entry per suppressed address (about 200 bytes: 100,000 entries are
about 20 MB).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sender.ses import MAX_PAGE_SIZE, SesAdapter

PER_RECIPIENT_MAX = 25  # with S unknown, lists this short are checked address by address
SNAPSHOT_MAX_AGE = 3600.0  # seconds before a snapshot is rebuilt from scratch (catches removals)
REFRESH_OVERLAP = timedelta(minutes=5)  # incremental refresh re-reads a little to cover clock skew


@dataclass(frozen=True, slots=True)
class Suppressed:
    reason: str  # BOUNCE or COMPLAINT
    since: str | None


class SuppressionChecker(Protocol):
    strategy: str
    calls: int

    def check(self, email: str) -> Suppressed | None: ...


class NoSuppressionCheck:
    """Offline dry runs: nothing is looked up."""

    strategy = "offline"
    calls = 0

    def check(self, email: str) -> Suppressed | None:
        return None


class PerRecipientChecker:
    strategy = "per-recipient"

    def __init__(self, ses: SesAdapter, *, calls: int = 0, strategy: str | None = None) -> None:
        self._ses = ses
        self.calls = calls  # calls already spent choosing this strategy count too
        if strategy is not None:
            self.strategy = strategy

    def check(self, email: str) -> Suppressed | None:
        self.calls += 1
        entry = self._ses.get_suppressed_destination(email)
        if not entry:
            return None
        return Suppressed(reason=str(entry.get("Reason", "UNKNOWN")), since=_iso(entry.get("LastUpdateTime")))


@dataclass
class _Snapshot:
    entries: dict[str, Suppressed]
    listed_at: datetime  # wall clock of the listing (for StartDate)
    built_mono: float  # monotonic time of the last full build

    @property
    def size(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class _Size:
    pages: int  # ceil(S / P), at least 1
    exact: bool  # False: a listing was abandoned after this many pages (S is larger)


_snapshots: dict[str, _Snapshot] = {}
_sizes: dict[str, _Size] = {}  # per region; outlives its snapshot
_snap_lock = threading.Lock()


def _pages(entries: int) -> int:
    return max(1, math.ceil(entries / MAX_PAGE_SIZE))


class _Abandoned(Exception):
    """The listing reached its page budget before its end."""

    def __init__(self, pages: int) -> None:
        super().__init__(pages)
        self.pages = pages


class SnapshotChecker:
    """The whole list in memory: built by one listing, refreshed incrementally while young.

    `budget` (pages) bounds the listing: when it is reached first, construction raises `_Abandoned` and the
    snapshot is left as it was (a partial refresh is dropped, since it would miss later entries).
    """

    strategy = "snapshot"

    def __init__(
        self,
        ses: SesAdapter,
        *,
        budget: int | None = None,
        max_age: float = SNAPSHOT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ses = ses
        self.calls = 0
        key = ses.region
        with _snap_lock:
            snap = _snapshots.get(key)
            now = clock()
            started = datetime.now(UTC)
            if snap is not None and now - snap.built_mono <= max_age:
                self.strategy = "snapshot-incremental"
                changes: dict[str, Suppressed] = {}
                try:
                    self._read_into(changes, start_date=snap.listed_at - REFRESH_OVERLAP, budget=budget)
                except _Abandoned:
                    del _snapshots[key]
                    raise
                snap.entries.update(changes)
                snap.listed_at = started
            else:
                entries: dict[str, Suppressed] = {}
                try:
                    self._read_into(entries, start_date=None, budget=budget)
                except _Abandoned as e:
                    _snapshots.pop(key, None)
                    _sizes[key] = _Size(pages=e.pages, exact=False)
                    raise
                snap = _Snapshot(entries=entries, listed_at=started, built_mono=now)
                _snapshots[key] = snap
            _sizes[key] = _Size(pages=_pages(snap.size), exact=True)
            self._entries = snap.entries

    def _read_into(self, entries: dict[str, Suppressed], *, start_date: datetime | None, budget: int | None) -> None:
        """Read the listing into `entries`. Pages are full (PageSize) but the last, so pages are counted from
        entries; with a budget, the page after the last one allowed is never requested."""
        limit = None if budget is None else budget * MAX_PAGE_SIZE
        count = 0
        complete = True
        for summary in self._ses.iter_suppressed_destinations(start_date=start_date):
            count += 1
            email = str(summary.get("EmailAddress", "")).lower()
            if email:
                entries[email] = Suppressed(
                    reason=str(summary.get("Reason", "UNKNOWN")), since=_iso(summary.get("LastUpdateTime"))
                )
            if limit is not None and count >= limit:
                complete = False  # there may be more; asking would spend a call over the budget
                break
        self.calls += _pages(count)
        if not complete:
            raise _Abandoned(_pages(count))

    def check(self, email: str) -> Suppressed | None:
        return self._entries.get(email.lower())


def known_list_size(ses: SesAdapter) -> int | None:
    """S for this region from the last complete listing, if any (in entries, rounded to whole pages)."""
    with _snap_lock:
        snap = _snapshots.get(ses.region)
        if snap is not None:
            return snap.size
        size = _sizes.get(ses.region)
    return size.pages * MAX_PAGE_SIZE if size is not None and size.exact else None


def choose_checker(
    ses: SesAdapter, recipients: int | None, *, clock: Callable[[], float] = time.monotonic
) -> SuppressionChecker:
    """The cheaper strategy for this blast (see the module's docstring for the call counts)."""
    if recipients is not None and recipients <= 0:
        return PerRecipientChecker(ses)  # nothing to look up: no call at all
    region = ses.region
    with _snap_lock:
        snap = _snapshots.get(region)
        size = _sizes.get(region)
    warm = snap is not None and clock() - snap.built_mono <= SNAPSHOT_MAX_AGE
    if recipients is None:
        return SnapshotChecker(ses, clock=clock)
    if warm:
        return _budgeted(ses, budget=recipients, clock=clock)  # about one call for the changes
    if size is not None:
        if recipients <= size.pages:
            return PerRecipientChecker(ses)
        return _budgeted(ses, budget=recipients, clock=clock)
    if recipients <= PER_RECIPIENT_MAX:
        return PerRecipientChecker(ses)
    return _budgeted(ses, budget=recipients, clock=clock)


def _budgeted(ses: SesAdapter, *, budget: int, clock: Callable[[], float]) -> SuppressionChecker:
    """A snapshot read within `budget` pages, or per-recipient lookups after the pages already spent."""
    try:
        return SnapshotChecker(ses, budget=budget, clock=clock)
    except _Abandoned as e:
        return PerRecipientChecker(
            ses, calls=e.pages, strategy=f"per-recipient (listing abandoned after {e.pages} pages)"
        )


def forget_snapshots() -> None:
    with _snap_lock:
        _snapshots.clear()
        _sizes.clear()


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
