"""One blast, stage by stage: template -> recipients -> preflight -> suppression -> render -> claim ->
send -> record. Recipients are streamed: memory stays bounded whatever the list's length.
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from sender.config import SenderConfig
from sender.errors import (
    AwsUnavailable,
    BlastFatal,
    MessageRejected,
    OutcomeUnknown,
    RecipientError,
    SenderError,
    SesError,
    Throttled,
    TransientSesError,
)
from sender.ledger import ClaimResult, Ledger, LedgerError, NullLedger
from sender.log import logger
from sender.models import BadRecipient, BlastEvent, BlastStatus, DeliveryRecord, Recipient, Status
from sender.preflight import Preflight, run_preflight
from sender.recipients import Deduper, RecipientSource
from sender.render import Rendered, Renderer, Template, build_context, build_mime
from sender.ses import SesAdapter, send_request, tag_value
from sender.suppression import NoSuppressionCheck, SuppressionChecker, choose_checker
from sender.throttle import RateLimiter, Unlimited

INLINE_RECORDS = 1000  # the response carries records for at most this many recipients
EXPECTED_LATENCY = 0.12  # seconds per SendEmail call, to size the pool from the rate
MAX_CONCURRENCY = 64
SEND_ATTEMPTS = 8  # per recipient, throttles and transient errors included
# No SendEmail starts (first try or retry) with less than this left of the invocation: a call may take the
# client's connect and read timeouts (3 + 10 s, sender.ses.client_config) and must finish in the invocation.
RETRY_FLOOR_MS = 15_000
SETTLE_SENT_ATTEMPTS = 4


class MessageWriter(Protocol):
    def write(self, recipient: Recipient, raw: bytes, rendered: Rendered) -> None: ...

    def finish(self, response: dict[str, Any]) -> None: ...


@dataclass
class Progress:
    done: int
    total: int | None
    counts: dict[str, int]
    elapsed: float
    rate: float


@dataclass
class Deps:
    """What a blast needs from the outside world; the handler and the CLI build it."""

    config: SenderConfig
    renderer: Renderer
    open_recipients: Callable[[BlastEvent], RecipientSource]
    ses: SesAdapter | None = None  # None: offline (no AWS checks, nothing sent)
    ledger: Ledger = field(default_factory=NullLedger)
    remaining_ms: Callable[[], int] | None = None
    time_margin_ms: int = 30_000
    max_send_rate: float | None = None  # MAX_SEND_RATE
    send_concurrency: int | None = None  # SEND_CONCURRENCY
    share: float = 1.0  # this invocation's part of the account's rate
    writer: MessageWriter | None = None
    progress: Callable[[Progress], None] | None = None
    progress_interval: float = 10.0
    limiter: Any = None  # injected in tests; else built from the account's MaxSendRate
    # Fan-out workers: the planner's checks stand (its MaxSendRate is given), and a blast-fatal stop is shared.
    account_rate: float | None = None
    stop_check: Callable[[], tuple[str, str] | None] | None = None  # another worker's stop: (code, reason)
    on_fatal: Callable[[str, str], None] | None = None  # tell the others this blast must stop


class Recorder:
    """Counts every record, keeps the first INLINE_RECORDS, logs each as one structured line."""

    def __init__(self, blast_id: str, *, total: int | None, deps: Deps) -> None:
        self.blast_id = blast_id
        self.counts = {s.value: 0 for s in Status}
        self.records: list[dict[str, Any]] = []
        self.total = total
        self._deps = deps
        self._started = time.monotonic()
        self._last_progress = self._started

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, record: DeliveryRecord) -> None:
        self.counts[record.status.value] += 1
        data = record.to_dict()
        if len(self.records) < INLINE_RECORDS:
            self.records.append(data)
        logger.info("delivery record", extra={"record": data})
        now = time.monotonic()
        if self._deps.progress is not None and now - self._last_progress >= self._deps.progress_interval:
            self._last_progress = now
            self._deps.progress(self.snapshot())

    def snapshot(self) -> Progress:
        elapsed = time.monotonic() - self._started
        sent = self.counts[Status.SENT.value] + self.counts[Status.DRY_RUN.value]
        return Progress(
            done=self.done,
            total=self.total,
            counts=dict(self.counts),
            elapsed=elapsed,
            rate=sent / elapsed if elapsed > 0 else 0.0,
        )


@dataclass
class _Fatal:
    event: threading.Event = field(default_factory=threading.Event)
    code: str | None = None
    reason: str | None = None

    on_trip: Callable[[str, str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def trip(self, error: SenderError) -> None:
        self.stop(error.code, error.message, announce=True)

    def stop(self, code: str, reason: str, *, announce: bool) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.code, self.reason = code, reason
            self.event.set()
        if announce and self.on_trip is not None:
            try:
                self.on_trip(code, reason)
            except Exception:  # noqa: BLE001 - this blast still stops; the others find out on their own
                logger.exception("could not share the blast-fatal stop")


class _NotAttempted(Exception):
    pass


class _OutOfTime(Exception):
    pass


class _StopWhen(stop_base):
    """A tenacity stop condition from a plain predicate."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: Any) -> bool:
        return self._predicate()


@contextlib.contextmanager
def _long_lived_frozen() -> Iterator[None]:
    """Keep the garbage collector off what was alive before the send loop (modules, SDK models, templates):
    a full collection of that heap pauses every thread for tens of milliseconds, which costs CPU and, worse,
    lets delayed sends go out in a bunch. Objects made during the loop are collected as usual; on the way
    out everything is handed back to the collector."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_limiters: dict[tuple[float, int], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(rate: float) -> RateLimiter:
    """The limiter for this rate in this thread of this process, kept across blasts.

    A warm Lambda container runs one chunk after another in the same thread: a fresh limiter for each
    would grant its first send at once, on top of the previous chunk's last second, and a fleet of workers
    doing that together would exceed the account's rate at every chunk boundary. Keyed by thread so that
    workers simulated as threads of one process (tests, the benchmark) keep a limiter each."""
    key = (rate, threading.get_ident())
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(rate)
        return limiter


def default_concurrency(rate: float, cap: int | None) -> int:
    """Enough calls in flight to reach the rate at the expected latency, with a little slack."""
    wanted = max(1, math.ceil(rate * EXPECTED_LATENCY * 1.5) + 1)
    wanted = min(wanted, MAX_CONCURRENCY)
    return min(wanted, cap) if cap else wanted


class Blast:
    def __init__(self, event: BlastEvent, deps: Deps) -> None:
        assert event.blast_id is not None and event.template is not None
        self.event = event
        self.deps = deps
        self.blast_id: str = event.blast_id
        self.offline = deps.ses is None
        self.warnings: list[str] = []
        self.fatal = _Fatal()
        self.tags = {"blast_id": tag_value(self.blast_id), **event.tags}
        self.preflight: Preflight | None = None
        self.source_error: str | None = None
        self.resumed = False
        self._throttles_before = 0
        self.total: int | None = None
        self._checked: tuple[Template, Preflight | None, RecipientSource] | None = None
        if deps.on_fatal is not None:
            self.fatal.on_trip = deps.on_fatal

    # --- stages ----------------------------------------------------------------------------------------
    def check(self) -> tuple[Template, Preflight | None, RecipientSource]:
        """Template, recipient source and preflight: every refusal happens here, before anything is sent."""
        if self._checked is not None:
            return self._checked
        self._checked = self._check()
        return self._checked

    def _check(self) -> tuple[Template, Preflight | None, RecipientSource]:
        deps, event = self.deps, self.event
        template = deps.renderer.load(str(event.template))  # TemplateError refuses before anything else
        source = deps.open_recipients(event)
        self.total = source.count()
        if self.offline:
            self.warnings.append("offline: AWS checks skipped (identity, DKIM, account, suppression)")
            return template, None, source
        assert deps.ses is not None
        if deps.account_rate is not None:
            # A fan-out worker: the planner ran the checks for the whole blast and passed the account's rate.
            self.preflight = Preflight(
                identity="(checked by the planner)",
                identity_type=None,
                dkim_status=None,
                sandbox=False,
                max_send_rate=deps.account_rate,
                quota_left=None,
                enforcement=None,
            )
            return template, self.preflight, source
        # A resume (an earlier real run got past its checks): its sent recipients already count against the
        # 24-hour quota and are skipped by the ledger, so the list's length is not what is left to send.
        self.resumed = deps.ledger.durable and not event.dry_run and deps.ledger.started_before(self.blast_id)
        try:
            self.preflight = run_preflight(
                deps.ses, deps.config, recipients=self.total, require_dkim=event.require_dkim, resumed=self.resumed
            )
        except SesError as e:
            raise AwsUnavailable(f"SES answered {e.code} before sending: {e.message}") from e
        self.warnings.extend(self.preflight.warnings)
        return template, self.preflight, source

    def run(self) -> dict[str, Any]:
        deps, event = self.deps, self.event
        template, preflight, source = self.check()
        if event.action == "preflight":
            return self._preflight_response(template, source)
        if preflight is not None and not event.dry_run and deps.ledger.durable and not self.resumed:
            deps.ledger.mark_started(self.blast_id)
        if preflight is None:
            checker: SuppressionChecker = NoSuppressionCheck()
            limiter: Any = Unlimited()
        else:
            assert deps.ses is not None
            try:
                checker = choose_checker(deps.ses, self.total)
            except SesError as e:
                raise AwsUnavailable(f"SES answered {e.code} while reading the suppression list: {e.message}") from e
            limiter = deps.limiter or limiter_for(self._rate(preflight.max_send_rate))

        recorder = Recorder(self.blast_id, total=self.total, deps=deps)
        concurrency = default_concurrency(limiter.rate if math.isfinite(limiter.rate) else 1.0, deps.send_concurrency)
        with _long_lived_frozen():
            self._throttles_before = limiter.throttles  # a kept limiter counts earlier blasts' throttles too
            remaining = self._stream(template, source, checker, limiter, recorder, concurrency)
        response = self._response(recorder, remaining, checker, limiter, concurrency)
        if deps.writer is not None:
            deps.writer.finish(response)
        return response

    def _rate(self, account_rate: float) -> float:
        rate = account_rate * self.deps.share
        if self.deps.max_send_rate is not None:
            rate = min(rate, self.deps.max_send_rate)
        return rate

    def _out_of_time(self) -> bool:
        remaining = self.deps.remaining_ms
        return remaining is not None and remaining() < self.deps.time_margin_ms

    def _stream(
        self,
        template: Template,
        source: RecipientSource,
        checker: SuppressionChecker,
        limiter: Any,
        recorder: Recorder,
        concurrency: int,
    ) -> int | None:
        """Process every entry; return how many were left unprocessed when time ran out (0 if none)."""
        dedupe = Deduper()
        in_flight: set[Future[DeliveryRecord]] = set()
        seen = 0
        stopped = False
        entries = iter(source.entries())
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
            while True:
                if self._out_of_time():
                    stopped = True
                    break
                try:
                    entry = next(entries)
                except StopIteration:
                    break
                except Exception as e:  # noqa: BLE001 - the list broke mid-way: stop cleanly, report it
                    logger.exception("recipient list unreadable", extra={"blast_id": self.blast_id})
                    self.source_error = f"{getattr(e, 'message', None) or type(e).__name__}"
                    stopped = True
                    break
                seen += 1
                if self.deps.stop_check is not None and not self.fatal.event.is_set():
                    stopped_by = self._poll_stop()
                    if stopped_by is not None:
                        self.fatal.stop(*stopped_by, announce=False)
                try:
                    record = self._prepare(entry, template, checker, dedupe, pool, limiter, in_flight)
                    if isinstance(entry, Recipient) and (record is None or record.status is not Status.INVALID):
                        dedupe.remember(entry)
                except Exception as e:  # noqa: BLE001 - nothing was sent for this one: say so, go on
                    logger.exception("recipient not processed", extra={"blast_id": self.blast_id})
                    record = DeliveryRecord(
                        self.blast_id,
                        getattr(entry, "email", ""),
                        Status.FAILED,
                        error_code=getattr(e, "code", type(e).__name__),
                        reason=f"not sent: {getattr(e, 'message', type(e).__name__)}; a re-run retries it",
                    )
                if record is not None:
                    self._record(recorder, record, noted=True)
                while len(in_flight) >= concurrency * 2:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        in_flight.discard(future)
                        self._record(recorder, future.result(), noted=False)
            for future in in_flight:
                self._record(recorder, future.result(), noted=False)
        if not stopped:
            return 0
        total = recorder.total
        return (total - seen) if total is not None else None

    def _poll_stop(self) -> tuple[str, str] | None:
        assert self.deps.stop_check is not None
        try:
            return self.deps.stop_check()
        except Exception:  # noqa: BLE001 - not knowing of a stop is not a reason to stop
            logger.exception("could not check for a blast-fatal stop")
            return None

    def _record(self, recorder: Recorder, record: DeliveryRecord, *, noted: bool) -> None:
        recorder.add(record)
        if noted and not self.event.dry_run and record.status in (Status.INVALID, Status.SUPPRESSED, Status.FAILED):
            self._noted(record)

    def _prepare(
        self,
        entry: Recipient | BadRecipient,
        template: Template,
        checker: SuppressionChecker,
        dedupe: Deduper,
        pool: ThreadPoolExecutor,
        limiter: Any,
        in_flight: set[Future[DeliveryRecord]],
    ) -> DeliveryRecord | None:
        """Everything before the send, in the reading thread. A record, or None when a send was queued."""
        blast_id = self.blast_id
        if isinstance(entry, BadRecipient):
            return DeliveryRecord(
                blast_id, entry.email, Status.INVALID, error_code="InvalidRecipient", reason=entry.reason
            )
        first = dedupe.first_position(entry)
        if first is not None:
            return DeliveryRecord(
                blast_id, entry.email, Status.DUPLICATE, reason=f"listed again (first at entry {first}); sent once"
            )
        if self.fatal.event.is_set():
            return self._not_attempted(entry.email)
        hit = checker.check(entry.email)
        if hit is not None:
            since = f" since {hit.since}" if hit.since else ""
            return DeliveryRecord(
                blast_id,
                entry.email,
                Status.SUPPRESSED,
                error_code=hit.reason,
                reason=f"on the SES account suppression list ({hit.reason}{since})",
            )
        try:
            raw = self._render(entry, template)
        except RecipientError as e:
            return DeliveryRecord(blast_id, entry.email, Status.INVALID, error_code=e.code, reason=e.message)
        if self.event.dry_run or self.offline:
            return DeliveryRecord(blast_id, entry.email, Status.DRY_RUN, reason="dry run: rendered, not sent")
        request = send_request(
            from_address=self.deps.config.from_address,
            to_address=entry.email,
            raw_message=raw,
            configuration_set=self.deps.config.configuration_set,
            tags=self.tags,
        )
        in_flight.add(pool.submit(self._claim_and_send, entry, request, limiter))
        return None

    def _claim_and_send(self, entry: Recipient, request: dict[str, Any], limiter: Any) -> DeliveryRecord:
        """Claim in the sending thread, right before the send: a claim is held only while its send is in
        flight, so a crash leaves at most `concurrency` recipients in doubt (and claims run in parallel)."""
        blast_id = self.blast_id
        if self.fatal.event.is_set():
            return self._noted(self._not_attempted(entry.email))
        try:
            claim = self.deps.ledger.claim(blast_id, entry.key, resend_unknown=self.event.resend_unknown)
        except LedgerError as e:
            # No claim, no send: stop this run rather than send without the at-most-once guarantee. Not
            # announced to other workers: a ledger blip is this run's problem, and a re-run resumes.
            self.fatal.stop(e.code, e.message, announce=False)
            logger.error("blast stopped", extra={"blast_id": blast_id, "error_code": e.code, "reason": e.message})
            return DeliveryRecord(
                blast_id, entry.email, Status.FAILED, error_code=e.code, reason=f"not sent: {e.message}"
            )
        except Exception as e:  # noqa: BLE001 - a bug in a claim: this recipient is not sent, the blast goes on
            logger.exception("claim failed", extra={"blast_id": blast_id})
            return DeliveryRecord(
                blast_id, entry.email, Status.FAILED, error_code=type(e).__name__, reason="not sent: the claim failed"
            )
        if claim.result is ClaimResult.SENT:
            return DeliveryRecord(
                blast_id,
                entry.email,
                Status.DUPLICATE,
                message_id=claim.message_id,
                reason="already sent under this blast_id",
                attempts=claim.attempts,
            )
        if claim.result is ClaimResult.IN_DOUBT:
            return DeliveryRecord(
                blast_id,
                entry.email,
                Status.UNKNOWN,
                attempts=claim.attempts,
                reason="an earlier send's outcome is unknown; not re-sent (resend_unknown re-sends it)",
            )
        return self._send(entry, request, limiter, claim.attempts)

    def _too_late_to_send(self) -> bool:
        remaining = self.deps.remaining_ms
        return remaining is not None and remaining() < RETRY_FLOOR_MS

    def _no_more_retries(self) -> bool:
        return self.fatal.event.is_set() or self._too_late_to_send()

    def _sleep_budget(self) -> float:
        """Seconds a retry may sleep and still leave RETRY_FLOOR_MS of the invocation."""
        remaining = self.deps.remaining_ms
        if remaining is None:
            return math.inf
        return max(0.0, (remaining() - RETRY_FLOOR_MS) / 1000)

    def _render(self, entry: Recipient, template: Template) -> bytes:
        config = self.deps.config
        context = build_context(self.event.globals, entry.vars, entry.email, entry.name)
        context.setdefault("unsubscribe", config.list_unsubscribe)
        rendered = template.render(context)
        raw = build_mime(
            from_name=config.from_name,
            from_email=config.from_email,
            to_name=entry.name,
            to_email=entry.email,
            rendered=rendered,
            reply_to=config.reply_to,
            list_unsubscribe=config.list_unsubscribe,
        )
        if self.deps.writer is not None:
            self.deps.writer.write(entry, raw, rendered)
        return raw

    def _noted(self, record: DeliveryRecord) -> DeliveryRecord:
        """Store a record that had no claim (so `blast status` and a re-run see it), never over a sent one."""
        try:
            self.deps.ledger.note(record)
        except LedgerError as e:  # informational only: the next claim fails too, and stops the run
            logger.warning("ledger note failed", extra={"blast_id": self.blast_id, "reason": e.message})
        return record

    def _not_attempted(self, email: str) -> DeliveryRecord:
        return DeliveryRecord(
            self.blast_id,
            email,
            Status.FAILED,
            error_code=self.fatal.code,
            reason=f"not attempted: sending stopped ({self.fatal.code}: {self.fatal.reason})",
        )

    # --- the one place a message is pushed out ---------------------------------------------------------
    def _send(self, entry: Recipient, request: dict[str, Any], limiter: Any, earlier: int) -> DeliveryRecord:
        attempts = 0

        backoff = wait_random_exponential(multiplier=0.25, max=20)

        def wait(retry_state: Any) -> float:
            # Never sleep past the time left: a send still retrying when the invocation ends would leave its
            # recipient `unknown`; one that stops in time is `failed`, and a re-run retries it.
            return min(float(backoff(retry_state)), self._sleep_budget())

        retrying = Retrying(
            retry=retry_if_exception_type((Throttled, TransientSesError)),
            wait=wait,
            stop=stop_any(stop_after_attempt(SEND_ATTEMPTS), _StopWhen(self._no_more_retries)),
            reraise=False,
        )

        def attempt() -> str:
            nonlocal attempts
            if self.fatal.event.is_set():
                raise _NotAttempted
            limiter.acquire(1)  # one recipient per message
            if self.fatal.event.is_set():
                raise _NotAttempted
            if self._too_late_to_send():
                raise _OutOfTime
            attempts += 1
            try:
                return self.deps.ses.send(request)  # type: ignore[union-attr]
            except Throttled:
                limiter.on_throttle()
                raise

        blast_id, email = self.blast_id, entry.email
        total = earlier
        try:
            message_id = retrying(attempt)
            record = DeliveryRecord(blast_id, email, Status.SENT, message_id=message_id, attempts=total + attempts)
        except RetryError as e:
            last = e.last_attempt.exception()
            code = getattr(last, "code", type(last).__name__)
            record = DeliveryRecord(
                blast_id,
                email,
                Status.FAILED,
                error_code=code,
                attempts=total + attempts,
                reason=f"not sent after {attempts} attempt(s): {getattr(last, 'message', last)}; a re-run retries it",
            )
        except _NotAttempted:
            record = self._not_attempted(email)
            record.attempts = total + attempts
        except _OutOfTime:
            record = DeliveryRecord(
                blast_id,
                email,
                Status.FAILED,
                error_code="OutOfTime",
                attempts=total + attempts,
                reason="not sent: too little of the invocation was left for a SendEmail call; a re-run sends it",
            )
        except BlastFatal as e:
            self.fatal.trip(e)
            logger.error("blast stopped", extra={"blast_id": blast_id, "error_code": e.code, "reason": e.message})
            record = DeliveryRecord(
                blast_id, email, Status.FAILED, error_code=e.code, reason=e.message, attempts=total + attempts
            )
        except MessageRejected as e:
            record = DeliveryRecord(
                blast_id, email, Status.FAILED, error_code=e.code, reason=e.message, attempts=total + attempts
            )
        except OutcomeUnknown as e:
            record = DeliveryRecord(
                blast_id,
                email,
                Status.UNKNOWN,
                error_code=e.code,
                attempts=total + attempts,
                reason=f"no answer from SES ({e.message}); it may have been sent, so it is not retried",
            )
        except Exception as e:  # noqa: BLE001 - a bug must not lose the recipient: record it, in doubt
            logger.exception("unexpected error while sending", extra={"blast_id": blast_id})
            record = DeliveryRecord(
                blast_id,
                email,
                Status.UNKNOWN,
                error_code=type(e).__name__,
                attempts=total + attempts,
                reason="unexpected error during the send; outcome unknown",
            )
        try:
            self._settle(record)
        except LedgerError as e:
            # The claim stays `sending`, which later runs report as unknown: never sent twice. Stop here. A
            # sent one's message id is in this record's log line, the evidence an operator needs.
            self.fatal.stop(e.code, e.message, announce=False)
            logger.error("blast stopped", extra={"blast_id": blast_id, "error_code": e.code, "reason": e.message})
            record.reason = f"{record.reason + '; ' if record.reason else ''}not recorded in the ledger: {e.message}"
        return record

    def _settle(self, record: DeliveryRecord) -> None:
        """Record a claimed send's outcome. A `sent` is retried a few times more than the client's own
        retries: losing it would leave a delivered message looking `unknown`, which an operator may resend."""
        attempts = SETTLE_SENT_ATTEMPTS if record.status is Status.SENT else 1
        for attempt in Retrying(
            retry=retry_if_exception_type(LedgerError),
            wait=wait_random_exponential(multiplier=0.5, max=4),
            stop=stop_after_attempt(attempts),
            reraise=True,
        ):
            with attempt:
                self.deps.ledger.settle(record)

    # --- responses ---------------------------------------------------------------------------------------
    def _preflight_response(self, template: Template, source: RecipientSource) -> dict[str, Any]:
        sample: dict[str, Any] | None = None
        problems: list[str] = []
        for entry in source.entries():
            if isinstance(entry, BadRecipient):
                problems.append(entry.reason)
                continue
            try:
                context = build_context(self.event.globals, entry.vars, entry.email, entry.name)
                context.setdefault("unsubscribe", self.deps.config.list_unsubscribe)
                rendered = template.render(context)
            except RecipientError as e:
                problems.append(f"entry {entry.position}: {e.message}")
                continue
            sample = {"email": entry.email, "subject": rendered.subject, "text": rendered.text[:2000]}
            break
        return {
            "blast_id": self.blast_id,
            "status": BlastStatus.COMPLETE.value,
            "action": "preflight",
            "dry_run": True,
            "counts": {s.value: 0 for s in Status},
            "records": [],
            "preflight": self.preflight.to_dict() if self.preflight else None,
            "sample": sample,
            "problems": problems[:20],
            "warnings": self.warnings,
        }

    def _response(
        self, recorder: Recorder, remaining: int | None, checker: SuppressionChecker, limiter: Any, concurrency: int
    ) -> dict[str, Any]:
        progress = recorder.snapshot()
        partial = remaining != 0
        response: dict[str, Any] = {
            "blast_id": self.blast_id,
            "status": (BlastStatus.PARTIAL if partial else BlastStatus.COMPLETE).value,
            "dry_run": self.event.dry_run or self.offline,
            "counts": recorder.counts,
            "records": recorder.records,
            "records_truncated": recorder.done > len(recorder.records),
            "warnings": self.warnings,
            "sandbox": self.preflight.sandbox if self.preflight else None,
            "suppression": {"strategy": checker.strategy, "calls": checker.calls},
            "rate": {
                "limit": limiter.rate if math.isfinite(limiter.rate) else None,
                "achieved": round(progress.rate, 2),
                "throttles": limiter.throttles - self._throttles_before,
                "concurrency": concurrency,
            },
            "elapsed_s": round(progress.elapsed, 3),
            "idempotent": self.deps.ledger.durable,
        }
        if self.fatal.event.is_set():
            response["error"] = {"code": self.fatal.code, "message": self.fatal.reason}
        elif self.source_error is not None:
            response["error"] = {"code": "RecipientsUnreadable", "message": self.source_error}
        if partial:
            response["remaining"] = remaining
            response["continue"] = (
                "time ran out before every recipient was processed: invoke the same event again; "
                + (
                    "the ledger skips everyone already sent."
                    if self.deps.ledger.durable
                    else "WITHOUT DELIVERY_TABLE a re-run re-sends to everyone already sent."
                )
            )
        return response


def run_blast(event: BlastEvent, deps: Deps) -> dict[str, Any]:
    return Blast(event, deps).run()
