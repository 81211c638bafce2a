"""Fan-out: a blast bigger than one invocation is split into chunks on SQS and sent by concurrent workers.

The planner (a `send` invocation with BLAST_QUEUE_URL set) runs every check first, then, when the blast
has more than CHUNK_SIZE recipients or cannot finish in the time left at the allowed rate, records a plan
in the ledger table (`#plan`) and enqueues one message per chunk: an inline slice, or a line range of the
S3 list, each small enough for a worker to finish in one invocation at its share of the rate.

Plans have generations. Invoking the same event again while chunks are outstanding plans nothing
(`already_planned`); once every chunk of the current generation is `done` or `stopped`, it plans the next
generation and enqueues every chunk again: the ledger skips everyone already sent and retries the
`failed` ones. A plan interrupted mid-enqueue (`interrupted`, or `planning` for PLANNING_STALE_S) is
finished by the next invocation. A planner's `#plan` write carries a random `planner` token, so a write
whose answer was lost (and was retried by botocore) is recognised as its own.

Workers are the same function, triggered by the queue. Each processes its chunk through the ordinary
pipeline at `rate / WORKER_CONCURRENCY` (the event source mapping's maximum concurrency), where `rate` is
the planner's min(MaxSendRate, MAX_SEND_RATE): the fleet stays under both. The ledger makes a redelivered
chunk harmless. A chunk is deleted from the queue only when every recipient in it was processed (`done`)
or an SES blast-fatal answer stopped the blast (`stopped`); anything else (time ran out, the list could
not be read, the ledger failed) is a batch item failure: SQS redelivers it, and past the receive limit it
lands in the dead-letter queue. A blast-fatal answer (sending paused, account suspended, daily quota) is
written to `#fatal` with the plan's generation; every worker of that generation polls it and stops, and
the next generation (the same event invoked again once the cause is fixed) ignores it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sender.errors import ConfigError, InvalidEvent, SenderError
from sender.ledger import CHUNK_PREFIX, FATAL_KEY, PLAN_KEY, DynamoLedger, generation_of
from sender.log import logger
from sender.models import BlastEvent, BlastStatus, Status, parse_event
from sender.pipeline import Blast, Deps
from sender.preflight import check_quota
from sender.queue import MAX_BODY, ChunkQueue, EnqueueFailed
from sender.recipients import InlineSource, RecipientSource
from sender.ses import FATAL_CODES
from sender.settings import Settings

CHUNK_KIND = "jada-blast-chunk"
CHUNK_VERSION = 1
PLANNING_STALE_S = 300  # a plan left 'planning' this long was interrupted: the next planner finishes it
FATAL_POLL_S = 1.0  # how often a worker looks for another worker's blast-fatal stop
BODY_BUDGET = MAX_BODY - 8 * 1024  # room for the envelope around a chunk's recipients
CHUNK_TIME_SHARE = 0.8  # a chunk is sized to take at most this share of a worker's time at its rate
REDELIVERY = "without it a redelivered chunk would send twice"
# SES answers that stop the whole blast (every worker): nothing but an operator's fix helps.
BLAST_FATAL_CODES = frozenset(FATAL_CODES | {"DailyQuotaExceeded"})
FINISHED = ("done", "stopped")  # a chunk item's states that need no further delivery


def chunk_key(generation: int, index: int) -> str:
    return f"{CHUNK_PREFIX}{generation:04d}#{index:06d}"


class ChunkIncomplete(SenderError):
    """The chunk was not finished (time, the list, the ledger): reported as a batch item failure so SQS
    redelivers it."""

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


def worker_rate(rate: float, workers: int) -> int:
    """Sends a second one worker actually gets: its limiter releases at most floor(rate / workers) in any
    second, so the fleet never exceeds `rate`."""
    return math.floor(rate / max(1, workers))


def fleet_check(rate: float, workers: int) -> list[str]:
    """Refuse a worker count the rate cannot be shared by; warn when sharing it loses some of the rate."""
    if workers > rate:
        raise ConfigError(
            f"WORKER_CONCURRENCY is {workers} but the allowed rate is {rate:g} sends a second (the account's "
            "MaxSendRate, or MAX_SEND_RATE if lower): every worker releases at least one send a second, so the "
            f"fleet would exceed it. Fix: set worker_concurrency to at most {math.floor(rate)}."
        )
    each = worker_rate(rate, workers)
    if each * workers < rate:
        return [
            f"each of the {workers} workers is held to {each} sends a second (floor of {rate:g}/{workers}), so the "
            f"fleet sends at most {each * workers}/s, never over {rate:g}/s in any second; a worker_concurrency "
            f"that divides {math.floor(rate)} avoids the loss"
        ]
    return []


def chunk_size_for(settings: Settings, rate: float, remaining_ms: int | None) -> int:
    """CHUNK_SIZE, or fewer when a worker could not finish that many in one invocation at its rate (workers
    run with the same timeout as the planner, so the planner's time left stands for theirs)."""
    if remaining_ms is None:
        return settings.chunk_size
    budget_s = (remaining_ms - settings.time_margin_ms) / 1000.0
    fits = math.floor(CHUNK_TIME_SHARE * budget_s * worker_rate(rate, settings.worker_concurrency))
    return max(1, min(settings.chunk_size, fits))


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


def finished_chunks(ledger: DynamoLedger, blast_id: str, generation: int) -> int:
    """How many chunks of `generation` are `done` or `stopped`. Items come in key order and every chunk item
    sorts before `#fatal`, `#plan` and any address: the read stops right after them."""
    finished = 0
    for item in ledger.items(blast_id, ("state", "generation")):
        key = str(item.get("email", ""))
        if key.startswith(CHUNK_PREFIX):
            if generation_of(item) == generation and item.get("state") in FINISHED:
                finished += 1
        elif key > CHUNK_PREFIX:
            break
    return finished


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
        """The `queued` response (or `partial` when enqueuing broke off), or None when the blast is small
        enough to send right here (then `blast`, already checked, runs it without repeating the checks)."""
        assert event.blast_id is not None
        blast = blast if blast is not None else Blast(event, self.deps)
        _template, preflight, source = blast.check()  # refuses before anything is planned
        total, first, last = self._extent(event, source)
        # Preflight could not count an S3 list; now its length is known, check it against the quota left.
        left = preflight.quota_left if preflight is not None else None
        blast.warnings.extend(check_quota(total, left, resumed=blast.resumed))
        account = preflight.max_send_rate if preflight is not None else 1.0
        rate = min(account, self.deps.max_send_rate) if self.deps.max_send_rate else account
        if not needs_fan_out(self.settings, total, rate, remaining_ms):
            return None
        warnings = [*blast.warnings, *fleet_check(rate, self.settings.worker_concurrency)]
        existing = self.ledger.get(event.blast_id, PLAN_KEY)
        generation, chunk_size = 1, chunk_size_for(self.settings, rate, remaining_ms)
        if existing:
            generation = generation_of(existing)
            state = existing.get("state")
            stale = state == "planning" and self.clock() - float(existing.get("planned_at") or 0) > PLANNING_STALE_S
            if event.resend_unknown or (state == "queued" and self._finished(event.blast_id, existing)):
                generation += 1  # a new generation of every chunk: the ledger skips whoever is already sent
            elif state == "interrupted" or stale:
                # Finish that generation: the same chunks (its chunk size), all of them enqueued again.
                chunk_size = int(existing.get("chunk_size") or chunk_size)
            else:
                return self._queued(event, existing, already=True)
        bodies = build_bodies(event, first, last, chunk_size, rate=rate, generation=generation)
        token = uuid.uuid4().hex
        plan = {
            "state": "planning",
            "total": total,
            "chunks": len(bodies),
            "chunk_size": chunk_size,
            "generation": generation,
            "planned_at": round(self.clock(), 3),
            "rate": rate,
            "workers": self.settings.worker_concurrency,
            "source": event.recipients_uri or "inline",
            "planner": token,
        }
        if not self.ledger.put_meta(event.blast_id, PLAN_KEY, plan, expect=existing):
            current = self.ledger.get(event.blast_id, PLAN_KEY) or plan
            if current.get("planner") != token:  # another planner got there first: its plan stands
                return self._queued(event, current, already=True)
            # else our own write, retried by the client after its answer was lost: the plan is ours
        try:
            queued = self.queue.send(bodies)
        except Exception as e:  # noqa: BLE001 - some chunks may be live: never answer `refused`
            return self._interrupted(event, plan, e, warnings)
        plan["state"] = "queued"
        try:
            self.ledger.put_meta(event.blast_id, PLAN_KEY, plan, expect=None, overwrite=True)
        except SenderError as e:
            # Every chunk is on the queue; the plan stays `planning` and is only re-enqueued (harmlessly)
            # by an invocation after PLANNING_STALE_S.
            warnings.append(f"the plan's state could not be recorded ({e.message}); the chunks are queued")
        logger.info("blast fanned out", extra={"chunks": queued, "total": total, "generation": generation})
        return self._queued(event, plan, already=False, warnings=warnings)

    def _finished(self, blast_id: str, plan: dict[str, Any]) -> bool:
        chunks = plan.get("chunks")
        return isinstance(chunks, int) and finished_chunks(self.ledger, blast_id, generation_of(plan)) >= chunks

    def _interrupted(
        self, event: BlastEvent, plan: dict[str, Any], error: Exception, warnings: list[str]
    ) -> dict[str, Any]:
        sent = error.sent if isinstance(error, EnqueueFailed) else 0
        code = error.code if isinstance(error, SenderError) else "InternalError"
        message = error.message if isinstance(error, SenderError) else f"unexpected {type(error).__name__}"
        logger.error(
            "fan-out interrupted while enqueuing",
            extra={"error_code": code, "reason": message, "chunks_queued": sent, "chunks": plan["chunks"]},
        )
        plan["state"] = "interrupted"
        try:
            self.ledger.put_meta(str(event.blast_id), PLAN_KEY, plan, expect=None, overwrite=True)
        except SenderError as e:  # still `planning`: taken over after PLANNING_STALE_S
            warnings.append(f"the plan could not be marked interrupted ({e.message})")
        response = self._queued(event, plan, already=False, warnings=warnings)
        response.update(
            {
                "status": BlastStatus.PARTIAL.value,
                "chunks_queued": sent,
                "error": {"code": code, "message": message},
                "continue": f"only {sent} of {plan['chunks']} chunks were queued (workers may be sending them): "
                "invoke the same event again to queue the rest; the ledger skips everyone already sent.",
            }
        )
        return response

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
        watch = f'`blast status {event.blast_id}` or {{"action": "status", "blast_id": "{event.blast_id}"}}'
        more = "; once every chunk is done, the same event again retries failed recipients" if already else ""
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
            "continue": f"workers send the chunks; watch with {watch}{more}",
        }


# --- worker --------------------------------------------------------------------------------------------------
class FatalWatch:
    """Shares a blast-fatal stop between the workers of one plan generation through the ledger's `#fatal`."""

    def __init__(
        self,
        ledger: DynamoLedger,
        blast_id: str,
        generation: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.blast_id = blast_id
        self.generation = generation
        self.clock = clock
        self._next = 0.0
        self._seen: tuple[str, str] | None = None

    def check(self) -> tuple[str, str] | None:
        """(code, reason) of a stop of this generation (or a later one), else None. An older generation's
        stop was before the operator re-invoked the blast: it no longer applies."""
        if self._seen is not None:
            return self._seen
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + FATAL_POLL_S
        item = self.ledger.get(self.blast_id, FATAL_KEY)
        if item and generation_of(item) >= self.generation:
            self._seen = (str(item.get("error_code")), str(item.get("reason")))
        return self._seen

    def trip(self, code: str, reason: str) -> None:
        """Stop every worker of this generation, for an SES blast-fatal answer only: anything else (a ledger
        blip) is this worker's problem, and its chunk is redelivered."""
        self._seen = (code, reason)
        if code not in BLAST_FATAL_CODES:
            return
        values = {"error_code": code, "reason": reason, "generation": self.generation, "at": round(time.time(), 3)}
        if self.ledger.put_meta(self.blast_id, FATAL_KEY, values, expect=None):
            return
        older = self.ledger.get(self.blast_id, FATAL_KEY)
        if older is None or generation_of(older) < self.generation:
            self.ledger.put_meta(self.blast_id, FATAL_KEY, values, expect=None, overwrite=True)


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


def _record_chunk(ledger: DynamoLedger, event: BlastEvent, message: dict[str, Any], state: str, counts: Any) -> None:
    generation, index = int(message["generation"]), int(message["chunk"])
    values: dict[str, Any] = {"state": state, "generation": generation, "chunk": index, "at": round(time.time(), 3)}
    values.update({f"n_{k}": v for k, v in (counts or {}).items()})
    ledger.put_meta(str(event.blast_id), chunk_key(generation, index), values, expect=None, overwrite=True)


def work_chunk(
    message: dict[str, Any],
    event: BlastEvent,
    settings: Settings,
    *,
    build: Callable[..., Deps],
    ledger: DynamoLedger,
    remaining_ms: Callable[[], int] | None,
) -> dict[str, Any]:
    """One chunk through the ordinary pipeline, with this worker's share of the fleet's rate. Returns when
    the chunk is finished (`done`, or `stopped` by a blast-fatal answer); raises ChunkIncomplete otherwise,
    so the message is redelivered rather than deleted."""
    assert event.blast_id is not None
    name = f"chunk {message['chunk']} (generation {message['generation']}) of blast {event.blast_id}"
    watch = FatalWatch(ledger, event.blast_id, int(message["generation"]))
    stopped = watch.check()
    if stopped is not None:
        logger.warning(
            "chunk skipped: the blast was stopped", extra={"chunk": message["chunk"], "error_code": stopped[0]}
        )
        _record_chunk(ledger, event, message, "stopped", None)
        return {"blast_id": event.blast_id, "status": "stopped", "error": {"code": stopped[0], "message": stopped[1]}}
    deps = build(
        settings,
        share=1.0 / max(1, settings.worker_concurrency),
        remaining_ms=remaining_ms,
        ledger=ledger,
        account_rate=float(message["rate"]),  # the planner's min(MaxSendRate, MAX_SEND_RATE): the fleet's rate
        stop_check=watch.check,
        on_fatal=watch.trip,
    )
    deps.open_recipients = chunk_source(event, message)
    response = Blast(event, deps).run()
    error = response.get("error") or {}
    if response["status"] == BlastStatus.PARTIAL.value:
        why = f"{error.get('code')}: {error.get('message')}" if error else "time ran out"
        raise ChunkIncomplete(f"{name} was not finished ({why}); SQS redelivers it")
    if error and error.get("code") not in BLAST_FATAL_CODES:
        raise ChunkIncomplete(f"{name} stopped on {error.get('code')} ({error.get('message')}); SQS redelivers it")
    _record_chunk(ledger, event, message, "stopped" if error else "done", response["counts"])
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
