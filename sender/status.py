"""A blast's state from the delivery ledger: `blast status BLAST_ID` and the event {"action": "status"}.

It reads the blast's partition (one paginated Query, only the attributes it needs) and counts the
recipients by stored status. A `sending` claim is a send in flight, or, once older than the ledger's
stale age, a send whose run died: counted `unknown`. Items whose key starts with `#` (and holds no `@`)
are blast-level metadata, not recipients. A fanned-out blast has a `#plan` (its `total`, `chunks` and
current `generation`), one `#chunk#<generation>#<index>` item per chunk a worker finished (`done`, or
`stopped` by a blast-fatal answer) and maybe a `#fatal` (`error_code`, `reason`, `generation`). Only the
current generation counts: the blast is `complete` when every chunk of it is done, `stopped` when its
`#fatal` is set, `partial` when its plan was interrupted while enqueuing, else `in_progress`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sender.errors import InvalidEvent
from sender.ledger import CHUNK_PREFIX, FATAL_KEY, PLAN_KEY, DynamoLedger, generation_of, is_meta_key
from sender.models import BLAST_ID_RE, Status
from sender.settings import Settings

MAX_LISTED = 100  # unknown recipients listed in the answer; the total is always given
STORED = ("sent", "failed", "invalid", "suppressed", "unknown", "sending")
ATTRIBUTES = (
    "status",
    "at",
    "attempts",
    "claimed_at",
    "address",
    "reason",
    "error_code",
    "total",
    "state",
    "chunks",
    "generation",
)


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
            if not ledger.claim_is_stale(item, now):
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
    plan = meta.get(PLAN_KEY, {})
    planned = plan.get("total")
    total = planned if isinstance(planned, int) else None
    chunks_total = plan.get("chunks") if isinstance(plan.get("chunks"), int) else None
    generation = generation_of(plan)
    fatal = meta.get(FATAL_KEY)
    if fatal is not None and chunks_total is not None and generation_of(fatal) < generation:
        fatal = None  # a stop of an earlier generation: the blast was invoked again since
    current = [item for key, item in meta.items() if key.startswith(CHUNK_PREFIX) and generation_of(item) == generation]
    chunks_done = sum(1 for item in current if item.get("state") == "done")
    chunks_stopped = sum(1 for item in current if item.get("state") == "stopped")
    if recorded == 0 and not meta:
        state = "not_found"
    elif counts["sending"]:
        state = "in_progress"
    elif chunks_total is None:  # no fan-out plan (a `#plan` with only a `total` is judged by the records)
        state = "stopped" if fatal is not None else "partial" if total is not None and recorded < total else "complete"
    elif fatal is not None:
        state = "stopped"
    elif chunks_done >= chunks_total:
        state = "complete"
    elif plan.get("state") == "interrupted":
        state = "partial"
    else:
        state = "in_progress"
    notes = []
    if state == "not_found":
        notes.append("the ledger holds no record of this blast_id (never sent, a dry run, or past its TTL)")
    if state == "partial" and chunks_total is None and total is not None:
        notes.append(f"{total - recorded} of {total} recipients not reached yet: invoke the same event again")
    elif state == "partial":
        notes.append(
            f"the plan was interrupted while its chunks were being queued: invoke the same event again to "
            f"queue the rest ({chunks_done} of {chunks_total} chunks done so far)"
        )
    if state == "stopped" and fatal is not None:
        notes.append(
            f"stopped by {fatal.get('error_code')}: fix the cause, then invoke the same event again (once no "
            "chunk is still running); it plans a new generation that skips everyone already sent"
        )
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
        summary["chunks"] = {
            "done": chunks_done,
            "stopped": chunks_stopped,
            "total": chunks_total,
            "plan": plan.get("state"),
            "generation": generation,
        }
    if fatal is not None:
        summary["error"] = {"code": fatal.get("error_code"), "message": fatal.get("reason")}
    return summary
