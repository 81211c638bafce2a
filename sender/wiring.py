"""Builds a blast's dependencies from settings and the secret: shared by the Lambda handler and the CLI."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sender.config import SenderConfig, load_config
from sender.errors import InvalidEvent
from sender.ledger import Ledger, NullLedger
from sender.models import BlastEvent
from sender.pipeline import MAX_CONCURRENCY, Deps, MessageWriter, Progress
from sender.recipients import InlineSource, RecipientSource
from sender.render import Renderer
from sender.ses import SesAdapter
from sender.settings import Settings

_adapters: dict[tuple[str | None, str | None, int, float], SesAdapter] = {}
_lock = threading.Lock()


def ses_adapter(config: SenderConfig, settings: Settings, *, share: float = 1.0) -> SesAdapter:
    """One adapter per (region, role, pool, management rate) per process: warm invocations reuse it.

    SES allows about one management call a second per account, shared by every sender on it: a fan-out
    worker with `share` of the account paces its own (suppression lookups) at that share of the rate."""
    region = config.ses_region or settings.region
    pool = settings.send_concurrency or MAX_CONCURRENCY
    management_rate = settings.ses_management_rate * min(1.0, max(share, 0.0001))
    key = (region, config.role_arn, pool, management_rate)
    with _lock:
        adapter = _adapters.get(key)
        if adapter is None:
            session = None
            if config.role_arn:
                from sender.credentials import assumed_session

                session = assumed_session(config.role_arn, region=region)
            from sender.throttle import Pacer

            adapter = SesAdapter(
                region=region,
                session=session,
                pool_size=pool,
                pacer=Pacer(rate=management_rate, burst=1 if share < 1 else 2),
            )
            _adapters[key] = adapter
        return adapter


def forget_adapters() -> None:
    with _lock:
        _adapters.clear()


def make_ledger(settings: Settings) -> Ledger:
    if not settings.delivery_table:
        return NullLedger()
    from sender.ledger import DynamoLedger

    ledger: Ledger = DynamoLedger(settings.delivery_table, ttl_days=settings.ledger_ttl_days)
    return ledger


def open_recipients(event: BlastEvent) -> RecipientSource:
    if event.recipients is not None:
        return InlineSource(event.recipients)
    if event.recipients_uri is not None:
        try:
            from sender.s3lists import S3Source
        except ImportError:
            raise InvalidEvent("recipients_uri: S3 lists are not supported by this build") from None
        source: RecipientSource = S3Source(event.recipients_uri)
        return source
    raise InvalidEvent("exactly one of recipients and recipients_uri is required")


def build_deps(
    settings: Settings,
    *,
    config: SenderConfig | None = None,
    offline: bool = False,
    remaining_ms: Callable[[], int] | None = None,
    writer: MessageWriter | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 10.0,
    share: float = 1.0,
    ledger: Ledger | None = None,
    ses: SesAdapter | None = None,
    **extra: Any,
) -> Deps:
    if config is None:
        config = load_config(settings.secret_id)
    if not offline and ses is None:
        ses = ses_adapter(config, settings, share=share)
    return Deps(
        config=config,
        renderer=Renderer(settings.templates_dir),
        open_recipients=open_recipients,
        ses=None if offline else ses,
        ledger=ledger if ledger is not None else (NullLedger() if offline else make_ledger(settings)),
        remaining_ms=remaining_ms,
        time_margin_ms=settings.time_margin_ms,
        max_send_rate=settings.max_send_rate,
        send_concurrency=settings.send_concurrency,
        share=share,
        writer=writer,
        progress=progress,
        progress_interval=progress_interval,
        **extra,
    )
