"""A blast's state from the delivery ledger: `blast status BLAST_ID` and the event {"action": "status"}.

It reads the blast's partition (one paginated Query, only the attributes it needs) and counts the
recipients by stored status. A `sending` claim is a send in flight, or, once older than the ledger's
stale age, a send whose run died: counted `unknown`. Items whose key starts with `#` (and holds no `@`)
are blast-level metadata, not recipients: `#plan` may carry `total` (how many recipients the blast has;
then a blast that has not reached them all is `partial`), `#fatal` an `error_code` and `reason` (why it
stopped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sender.errors import InvalidEvent
from sender.ledger import DynamoLedger, is_meta_key
from sender.models import BLAST_ID_RE, Status
from sender.settings import Settings

MAX_LISTED = 100  # unknown recipients listed in the answer; the total is always given
STORED = ("sent", "failed", "invalid", "suppressed", "unknown", "sending")
ATTRIBUTES = ("status", "at", "attempts", "claimed_at", "address", "reason", "error_code", "total", "state", "chunks")


def blast_status(
    blast_id: str | None,
    settings: Settings,
    *,
    ledger: DynamoLedger | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    if not blast_id or not BLAST_ID_RE.fullmatch(blast_id):
        raise InvalidEvent("blast_id: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    if ledger is None:
        ledger = DynamoLedger.for_settings(
            settings,
            needed_for="status",
            why="without it the sender keeps no record of a blast once its run has answered",
        )
    now = clock()
    # Every record status of the contract (dry runs and in-list duplicates are never stored, so they stay 0),
    # plus `sending` for claims in flight.
    counts = {**{s.value: 0 for s in Status}, **dict.fromkeys(STORED, 0)}
    unknown: list[dict[str, Any]] = []
    meta: dict[str, dict[str, Any]] = {}
    last_update: str | None = None
    for item in ledger.items(blast_id, ATTRIBUTES):
        key = str(item.get("email", ""))
        if is_meta_key(key):
            meta[key] = item
            continue
        status = str(item.get("status") or "unknown")
        at = item.get("at")
        if isinstance(at, str) and (last_update is None or at > last_update):
            last_update = at
        reason = item.get("reason")
        if status == "sending":
            if now - float(item.get("claimed_at") or 0) < ledger.stale_after_s:
                counts["sending"] += 1
                continue
            status = "unknown"
            reason = "claimed for sending by a run that never recorded the outcome (it stopped mid-send)"
        counts[status] = counts.get(status, 0) + 1
        if status == "unknown" and len(unknown) < MAX_LISTED:
            unknown.append(
                {
                    "email": item.get("address") or key,
                    "attempts": item.get("attempts", 0),
                    "at": at,
                    "error_code": item.get("error_code"),
                    "reason": reason,
                }
            )
    recorded = sum(counts.values())
    planned = meta.get("#plan", {}).get("total")
    total = planned if isinstance(planned, int) else None
    fatal = meta.get("#fatal")
    plan = meta.get("#plan", {})
    chunks_total = plan.get("chunks") if isinstance(plan.get("chunks"), int) else None
    chunks_done = sum(1 for key, item in meta.items() if key.startswith("#chunk#") and item.get("state") == "done")
    if recorded == 0 and not meta:
        state = "not_found"
    elif counts["sending"] or (chunks_total is not None and chunks_done < chunks_total and fatal is None):
        state = "in_progress"
    elif total is not None and recorded < total:
        state = "partial"
    else:
        state = "complete"
    notes = []
    if state == "not_found":
        notes.append("the ledger holds no record of this blast_id (never sent, a dry run, or past its TTL)")
    if state == "partial" and total is not None:
        notes.append(f"{total - recorded} of {total} recipients not reached yet: invoke the same event again")
    if counts["unknown"]:
        notes.append(
            f"{counts['unknown']} recipient(s) unknown: SES may or may not have accepted them, so they are never "
            're-sent automatically; `blast resend-unknown EVENT.json` (or "resend_unknown": true) re-sends '
            "them once"
        )
    if counts["failed"]:
        notes.append(f"{counts['failed']} failed: invoking the same event again retries them (sent ones are skipped)")
    summary: dict[str, Any] = {
        "blast_id": blast_id,
        "action": "status",
        "status": state,
        "counts": counts,
        "recipients": recorded,
        "total": total,
        "last_update": last_update,
        "unknown": unknown,
        "unknown_total": counts["unknown"],
        "unknown_truncated": counts["unknown"] > len(unknown),
        "notes": notes,
    }
    if chunks_total is not None:
        summary["chunks"] = {"done": chunks_done, "total": chunks_total, "plan": plan.get("state")}
    if fatal is not None:
        summary["error"] = {"code": fatal.get("error_code"), "message": fatal.get("reason")}
    return summary
