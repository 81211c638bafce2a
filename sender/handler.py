"""The Lambda entry point: wiring only. Every action of the CONTRACT goes through `lambda_handler`.

It never raises: a bad event or a refused blast returns `status: refused` with a code, because an
async or scheduled invocation that raises is retried by Lambda for nothing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sender.errors import Refused, SenderError
from sender.log import logger, metrics
from sender.models import BlastStatus, parse_event, refused, safe_blast_id
from sender.pipeline import Blast, run_blast
from sender.settings import Settings
from sender.wiring import build_deps


def _progress_line(p: Any) -> None:
    logger.info(
        "progress",
        extra={
            "done": p.done,
            "total": p.total,
            "counts": p.counts,
            "rate": round(p.rate, 2),
            "elapsed_s": round(p.elapsed, 1),
        },
    )


def _emit_metrics(response: dict[str, Any]) -> None:
    if response.get("action") == "status":
        return  # a status summary counts what earlier runs recorded: emitting them again would double count
    for status, count in response.get("counts", {}).items():
        metrics.add_metric(name=f"Records{status.title().replace('_', '')}", unit=MetricUnit.Count, value=count)
    if "batchItemFailures" in response:  # a fan-out worker's batch
        metrics.add_metric(name="ChunksFailed", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    if response.get("status") == BlastStatus.REFUSED.value:
        metrics.add_metric(name="BlastsRefused", unit=MetricUnit.Count, value=1)


def handle_chunks(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A fan-out worker's SQS batch. Whatever goes wrong, every message not done is reported failed, so
    SQS delivers it again (and, past the receive limit, to the dead-letter queue): never lost."""
    try:
        from sender.fanout import handle_worker_batch

        return handle_worker_batch(event, context, Settings.from_env())
    except Exception as e:  # noqa: BLE001
        logger.exception("chunk batch failed as a whole", extra={"error_code": getattr(e, "code", type(e).__name__)})
        ids = [r.get("messageId") for r in event.get("Records", []) if isinstance(r, dict)]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids if i]}


def is_sqs_batch(event: Any) -> bool:
    """An SQS event source's batch: a list of records, each from aws:sqs. Anything else is an invoke payload
    (and a stray `Records` key in one is refused as an unknown field)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def handle(event: Any, context: Any) -> dict[str, Any]:
    if is_sqs_batch(event):
        return handle_chunks(event, context)
    blast_id = safe_blast_id(event)
    try:
        settings = Settings.from_env()
        parsed = parse_event(event)
        blast_id = parsed.blast_id
        if blast_id:
            logger.append_keys(blast_id=blast_id)
        if parsed.action == "status":
            from sender.status import blast_status

            status: dict[str, Any] = blast_status(parsed.blast_id, settings)
            return status
        if parsed.action == "doctor":
            from sender.doctor import run_doctor_event

            report: dict[str, Any] = run_doctor_event(parsed, settings)
            return report
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        deps = build_deps(settings, remaining_ms=remaining, progress=_progress_line)
        if settings.queue_url and parsed.action == "send" and not parsed.dry_run:
            from sender.fanout import Planner

            blast = Blast(parsed, deps)
            queued = Planner(settings, deps).run(parsed, remaining() if remaining else None, blast=blast)
            return queued if queued is not None else blast.run()
        return run_blast(parsed, deps)
    except Refused as e:
        logger.warning("blast refused", extra={"error_code": e.code, "reason": e.message})
        return refused(blast_id, e.code, e.message)
    except SenderError as e:
        logger.error("blast failed", extra={"error_code": e.code, "reason": e.message})
        return refused(blast_id, e.code, e.message)
    except Exception as e:  # noqa: BLE001
        # Anything unforeseen: logged with its traceback, answered without details that could hold data.
        logger.exception("unexpected error")
        return refused(blast_id, "InternalError", f"unexpected {type(e).__name__}; see the function's log")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    response = handle(event, context)
    _emit_metrics(response)
    return response
