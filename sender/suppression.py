"""The SES account-level suppression list, checked the cheaper way for each blast.

SES allows about one management request per second per account, so the number of calls matters:
- per recipient: one GetSuppressedDestination per address (N calls);
- snapshot: one paginated ListSuppressedDestinations pass (ceil(S / 1000) calls), kept in memory for
  warm invocations and refreshed incrementally (StartDate) while it is young.
`choose_checker` picks the cheaper from what it knows: N, and S from an earlier snapshot.
"""

from __future__ import annotations

import math
import threading
import time
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

    def __init__(self, ses: SesAdapter) -> None:
        self._ses = ses
        self.calls = 0

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


_snapshots: dict[str, _Snapshot] = {}
_snap_lock = threading.Lock()


class SnapshotChecker:
    strategy = "snapshot"

    def __init__(self, ses: SesAdapter, *, max_age: float = SNAPSHOT_MAX_AGE, clock: Any = time.monotonic) -> None:
        self._ses = ses
        self.calls = 0
        key = ses.region
        with _snap_lock:
            snap = _snapshots.get(key)
            now = clock()
            if snap is not None and now - snap.built_mono <= max_age:
                self.strategy = "snapshot-incremental"
                started = datetime.now(UTC)
                self._read_into(snap.entries, start_date=snap.listed_at - REFRESH_OVERLAP)
                snap.listed_at = started
            else:
                started = datetime.now(UTC)
                entries: dict[str, Suppressed] = {}
                self._read_into(entries, start_date=None)
                snap = _Snapshot(entries=entries, listed_at=started, built_mono=now)
                _snapshots[key] = snap
            self._entries = snap.entries

    def _read_into(self, entries: dict[str, Suppressed], *, start_date: datetime | None) -> None:
        count = 0
        for summary in self._ses.iter_suppressed_destinations(start_date=start_date):
            count += 1
            email = str(summary.get("EmailAddress", "")).lower()
            if email:
                entries[email] = Suppressed(
                    reason=str(summary.get("Reason", "UNKNOWN")), since=_iso(summary.get("LastUpdateTime"))
                )
        self.calls += max(1, math.ceil(count / MAX_PAGE_SIZE))

    def check(self, email: str) -> Suppressed | None:
        return self._entries.get(email.lower())


def known_list_size(ses: SesAdapter) -> int | None:
    snap = _snapshots.get(ses.region)
    return snap.size if snap is not None else None


def choose_checker(ses: SesAdapter, recipients: int | None) -> SuppressionChecker:
    """The cheaper strategy for this blast: a snapshot when one is warm (about one call to refresh), else
    per recipient when N is at most the pages a full listing would take (or small, when S is unknown)."""
    with _snap_lock:
        warm = _snapshots.get(ses.region)
    if warm is not None:
        return SnapshotChecker(ses)
    if recipients is not None:
        size = known_list_size(ses)
        limit = PER_RECIPIENT_MAX if size is None else math.ceil(size / MAX_PAGE_SIZE)
        if recipients <= limit:
            return PerRecipientChecker(ses)
    return SnapshotChecker(ses)


def forget_snapshots() -> None:
    with _snap_lock:
        _snapshots.clear()


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
