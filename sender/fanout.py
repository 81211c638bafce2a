"""Fan-out: a blast bigger than one invocation is split into chunks on SQS and sent by concurrent workers.

The planner (a `send` invocation with BLAST_QUEUE_URL set) runs every check first, then, when the blast
has more than CHUNK_SIZE recipients or cannot finish in the time left at the allowed rate, records a plan
in the ledger table (`#plan`) and enqueues one message per chunk: an inline slice, or a line range of the
S3 list. Planning is idempotent: the same blast_id is planned once (an operator's `resend_unknown` plans it
again, as a new generation).

Workers are the same function, triggered by the queue. Each processes its chunk through the ordinary
pipeline with a share of the account's rate (1 / WORKER_CONCURRENCY, the event source mapping's maximum
concurrency), so the fleet stays under MaxSendRate. The ledger makes a redelivered chunk harmless. A
chunk that runs out of time is reported as a batch item failure and comes back after the visibility
timeout to finish; one that keeps failing lands in the dead-letter queue. A blast-fatal answer from SES
(sending paused, account suspended) is written to `#fatal`, which every worker polls, so the whole fleet
stops instead of hammering SES.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sender.errors import ConfigError, InvalidEvent, QuotaExceeded, SenderError
from sender.ledger import DynamoLedger
from sender.log import logger
from sender.models import BlastEvent, BlastStatus, Status, parse_event
from sender.pipeline import Blast, Deps
from sender.queue import MAX_BODY, ChunkQueue
from sender.recipients import InlineSource, RecipientSource
from sender.settings import Settings

CHUNK_KIND = "jada-blast-chunk"
CHUNK_VERSION = 1
PLAN_KEY = "#plan"
FATAL_KEY = "#fatal"
PLANNING_STALE_S = 300  # a plan left 'planning' this long was interrupted: the next planner finishes it
FATAL_POLL_S = 1.0  # how often a worker looks for another worker's blast-fatal stop
BODY_BUDGET = MAX_BODY - 8 * 1024
REDELIVERY = "without it a redelivered chunk would send twice"  # room for the envelope around a chunk's recipients


def chunk_key(index: int) -> str:
    return f"#chunk#{index:06d}"


class ChunkIncomplete(SenderError):
    """The chunk ran out of time: reported as a batch item failure so SQS redelivers it to finish."""

    code = "ChunkIncomplete"


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    index: int
    first: int  # 1-based position (inline) or line number (S3), inclusive
    last: int


def needs_fan_out(settings: Settings, total: int, rate: float, remaining_ms: int | None) -> bool:
    """More than one chunk, or more than one invocation can send in the time it has left."""
    if total > settings.chunk_size:
        return True
    if remaining_ms is None:
        return False
    budget = (remaining_ms - settings.time_margin_ms) / 1000.0
    return total / max(rate, 0.001) > budget


def plan_chunks(first: int, last: int, chunk_size: int) -> list[ChunkSpec]:
    """Split positions first..last into ranges of at most chunk_size."""
    specs = []
    for index, start in enumerate(range(first, last + 1, chunk_size)):
        specs.append(ChunkSpec(index=index, first=start, last=min(last, start + chunk_size - 1)))
    return specs


def chunk_body(event: BlastEvent, spec: ChunkSpec, chunks: int, *, rate: float, generation: int) -> dict[str, Any]:
    payload = event.model_dump(exclude_none=True, exclude_defaults=False)
    if event.recipients is not None:
        payload["recipients"] = event.recipients[spec.first - 1 : spec.last]
    return {
        "kind": CHUNK_KIND,
        "v": CHUNK_VERSION,
        "blast_id": event.blast_id,
        "generation": generation,
        "chunk": spec.index,
        "chunks": chunks,
        "first": spec.first,
        "last": spec.last,
        "rate": rate,
        "event": payload,
    }


def _fits(body: dict[str, Any]) -> bool:
    return len(json.dumps(body, separators=(",", ":"), default=str).encode()) <= BODY_BUDGET


def build_bodies(
    event: BlastEvent, first: int, last: int, chunk_size: int, *, rate: float, generation: int
) -> list[dict[str, Any]]:
    """Chunk bodies, each within SQS's message size: an inline chunk too large is split further."""
    specs = plan_chunks(first, last, chunk_size)
    while True:
        bodies = [chunk_body(event, s, len(specs), rate=rate, generation=generation) for s in specs]
        if all(_fits(b) for b in bodies):
            return bodies
        if chunk_size == 1:
            raise InvalidEvent("a single recipient's data is larger than an SQS message (256 KB)")
        chunk_size = max(1, chunk_size // 2)
        specs = plan_chunks(first, last, chunk_size)


# --- planner ---------------------------------------------------------------------------------------------------
class Planner:
    def __init__(
        self,
        settings: Settings,
        deps: Deps,
        *,
        ledger: DynamoLedger | None = None,
        queue: ChunkQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.queue_url:
            raise ConfigError("fan-out needs BLAST_QUEUE_URL")
        if ledger is None:
            ledger = DynamoLedger.for_settings(settings, needed_for="fan-out (BLAST_QUEUE_URL)", why=REDELIVERY)
        self.settings = settings
        self.deps = deps
        self.ledger = ledger
        self.queue = queue if queue is not None else ChunkQueue(settings.queue_url)
        self.clock = clock

    def run(self, event: BlastEvent, remaining_ms: int | None, *, blast: Blast | None = None) -> dict[str, Any] | None:
        """The `queued` response, or None when the blast is small enough to send right here (then `blast`,
        already checked, runs it without repeating the checks)."""
        assert event.blast_id is not None
        blast = blast if blast is not None else Blast(event, self.deps)
        _template, preflight, source = blast.check()  # refuses before anything is planned
        total, first, last = self._extent(event, source)
        if preflight is not None and preflight.quota_left is not None and total > preflight.quota_left:
            raise QuotaExceeded(
                f"this blast has {total} recipients but only {preflight.quota_left} of the 24-hour quota is left. "
                "Fix: wait for the quota to roll over, split the blast, or request a higher quota."
            )
        rate = preflight.max_send_rate if preflight is not None else 1.0
        alone = min(rate, self.deps.max_send_rate) if self.deps.max_send_rate else rate
        if not needs_fan_out(self.settings, total, alone, remaining_ms):
            return None
        existing = self.ledger.get(event.blast_id, PLAN_KEY)
        generation = 1
        if existing:
            generation = int(existing.get("generation") or 1)
            planned_at = float(existing.get("planned_at") or 0)
            interrupted = existing.get("state") == "planning" and self.clock() - planned_at > PLANNING_STALE_S
            if event.resend_unknown:
                generation += 1  # the operator's explicit re-run: a new generation of the same chunks
            elif not interrupted:
                return self._queued(event, existing, already=True)
        bodies = build_bodies(event, first, last, self.settings.chunk_size, rate=rate, generation=generation)
        plan = {
            "state": "planning",
            "total": total,
            "chunks": len(bodies),
            "generation": generation,
            "planned_at": round(self.clock(), 3),
            "rate": rate,
            "workers": self.settings.worker_concurrency,
            "source": event.recipients_uri or "inline",
        }
        if not self.ledger.put_meta(event.blast_id, PLAN_KEY, plan, expect=existing):
            # Another planner got there first: its plan stands.
            current = self.ledger.get(event.blast_id, PLAN_KEY) or plan
            return self._queued(event, current, already=True)
        self.queue.send(bodies)
        plan["state"] = "queued"
        self.ledger.put_meta(event.blast_id, PLAN_KEY, plan, expect=None, overwrite=True)
        logger.info("blast fanned out", extra={"chunks": len(bodies), "total": total, "generation": generation})
        return self._queued(event, plan, already=False, warnings=blast.warnings)

    def _extent(self, event: BlastEvent, source: RecipientSource) -> tuple[int, int, int]:
        """(recipients, first position, last position) of the whole list."""
        if event.recipients is not None:
            return len(event.recipients), 1, len(event.recipients)
        lines = getattr(source, "line_range", None)
        if callable(lines):
            first, last = lines()
            return max(0, last - first + 1), first, last
        positions = [entry.position for entry in source.entries()]
        if not positions:
            return 0, 1, 0
        return len(positions), min(positions), max(positions)

    def _queued(
        self, event: BlastEvent, plan: dict[str, Any], *, already: bool, warnings: list[str] | None = None
    ) -> dict[str, Any]:
        return {
            "blast_id": event.blast_id,
            "status": BlastStatus.QUEUED.value,
            "dry_run": False,
            "counts": {s.value: 0 for s in Status},  # the workers' records: `blast status` counts them
            "records": [],
            "chunks": plan.get("chunks"),
            "total": plan.get("total"),
            "generation": plan.get("generation"),
            "already_planned": already,
            "warnings": warnings or [],
            "continue": f"workers send the chunks; watch with `blast status {event.blast_id}` or "
            f'{{"action": "status", "blast_id": "{event.blast_id}"}}',
        }


# --- worker --------------------------------------------------------------------------------------------------
class FatalWatch:
    """Shares a blast-fatal stop between workers through the ledger's `#fatal` item."""

    def __init__(self, ledger: DynamoLedger, blast_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.blast_id = blast_id
        self.clock = clock
        self._next = 0.0
        self._seen: tuple[str, str] | None = None

    def check(self) -> tuple[str, str] | None:
        if self._seen is not None:
            return self._seen
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + FATAL_POLL_S
        item = self.ledger.get(self.blast_id, FATAL_KEY)
        if item:
            self._seen = (str(item.get("error_code")), str(item.get("reason")))
        return self._seen

    def trip(self, code: str, reason: str) -> None:
        self._seen = (code, reason)
        self.ledger.put_meta(
            self.blast_id, FATAL_KEY, {"error_code": code, "reason": reason, "at": round(time.time(), 3)}, expect=None
        )


def parse_chunk(body: str) -> tuple[dict[str, Any], BlastEvent]:
    try:
        message = json.loads(body)
    except ValueError:
        raise InvalidEvent("chunk message is not JSON") from None
    if not isinstance(message, dict) or message.get("kind") != CHUNK_KIND or message.get("v") != CHUNK_VERSION:
        raise InvalidEvent("not a blast chunk message of a version this worker understands")
    for key in ("chunk", "chunks", "first", "last", "generation"):
        if not isinstance(message.get(key), int):
            raise InvalidEvent(f"chunk message: {key} must be a whole number")
    if not isinstance(message.get("rate"), int | float) or message["rate"] <= 0:
        raise InvalidEvent("chunk message: rate must be a positive number")
    return message, parse_event(message.get("event"))


def chunk_source(event: BlastEvent, message: dict[str, Any]) -> Callable[[BlastEvent], RecipientSource]:
    if event.recipients is not None:
        items, first = event.recipients, int(message["first"])
        return lambda _event: InlineSource(items, start=first)
    from sender.s3lists import S3Source

    uri, first, last = str(event.recipients_uri), int(message["first"]), int(message["last"])
    return lambda _event: S3Source(uri, start_line=first, end_line=last)


def work_chunk(
    message: dict[str, Any],
    event: BlastEvent,
    settings: Settings,
    *,
    build: Callable[..., Deps],
    ledger: DynamoLedger,
    remaining_ms: Callable[[], int] | None,
) -> dict[str, Any]:
    """One chunk through the ordinary pipeline, with this worker's share of the rate."""
    assert event.blast_id is not None
    watch = FatalWatch(ledger, event.blast_id)
    stopped = watch.check()
    if stopped is not None:
        logger.warning(
            "chunk skipped: the blast was stopped", extra={"chunk": message["chunk"], "error_code": stopped[0]}
        )
        return {"blast_id": event.blast_id, "status": "stopped", "error": {"code": stopped[0], "message": stopped[1]}}
    deps = build(
        settings,
        share=1.0 / max(1, settings.worker_concurrency),
        remaining_ms=remaining_ms,
        ledger=ledger,
        account_rate=float(message["rate"]),
        stop_check=watch.check,
        on_fatal=watch.trip,
    )
    deps.open_recipients = chunk_source(event, message)
    response = Blast(event, deps).run()
    if response["status"] == BlastStatus.PARTIAL.value and not response.get("error"):
        raise ChunkIncomplete(
            f"chunk {message['chunk']} of blast {event.blast_id} ran out of time; SQS redelivers it to finish"
        )
    ledger.put_meta(
        event.blast_id,
        chunk_key(int(message["chunk"])),
        {
            "state": "done",
            "generation": message["generation"],
            "at": round(time.time(), 3),
            **{f"n_{k}": v for k, v in response["counts"].items()},
        },
        expect=None,
        overwrite=True,
    )
    return response


def handle_worker_batch(event: dict[str, Any], context: Any, settings: Settings) -> dict[str, Any]:
    """An SQS batch of chunks: each processed on its own, failures reported per item."""
    from sender.wiring import build_deps

    ledger = DynamoLedger.for_settings(settings, needed_for="a fan-out worker", why=REDELIVERY)
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        message, parsed = parse_chunk(record.body)
        logger.append_keys(blast_id=parsed.blast_id, chunk=message["chunk"])
        return work_chunk(message, parsed, settings, build=build_deps, ledger=ledger, remaining_ms=remaining)

    # A batch whose every chunk failed must still answer per item (not raise), or the handler would turn
    # it into a response that deletes the messages.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
