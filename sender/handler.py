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
from sender.models import BlastStatus, parse_event, refused
from sender.pipeline import run_blast
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
    if response.get("status") == BlastStatus.REFUSED.value:
        metrics.add_metric(name="BlastsRefused", unit=MetricUnit.Count, value=1)


def handle(event: Any, context: Any) -> dict[str, Any]:
    blast_id = event.get("blast_id") if isinstance(event, dict) else None
    try:
        settings = Settings.from_env()
        if isinstance(event, dict) and "Records" in event:
            from sender.fanout import handle_worker_batch

            result: dict[str, Any] = handle_worker_batch(event, context, settings)
            return result
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
