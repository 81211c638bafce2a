"""The function's environment, read once into typed settings with documented defaults (CONTRACT)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sender.errors import ConfigError

PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def default_region() -> str | None:
    """AWS_REGION, then AWS_DEFAULT_REGION. boto3 itself reads only the second; Lambda sets both, a shell
    often only the first. Every client gets this, so either works (None: boto3's own chain decides)."""
    return (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "").strip() or None


@dataclass(frozen=True, slots=True)
class Settings:
    secret_id: str | None = None
    delivery_table: str | None = None
    queue_url: str | None = None
    chunk_size: int = 500
    worker_concurrency: int = 1
    templates_dir: Path = PACKAGE_TEMPLATES
    max_send_rate: float | None = None
    send_concurrency: int | None = None
    ledger_ttl_days: int = 180
    # Stop claiming new recipients when less than this is left of the invocation.
    time_margin_ms: int = 30_000
    region: str | None = None
    # SES management calls (identity, account, suppression) per second: SES allows about 1 per account.
    ses_management_rate: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float | None, *, integer: bool, minimum: float) -> float | None:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a {'whole ' if integer else ''}number") from None
            if value < minimum:
                raise ConfigError(f"{name} must be at least {minimum:g}")
            return value

        templates = text("TEMPLATES_DIR")
        max_rate = number("MAX_SEND_RATE", None, integer=False, minimum=0.01)
        concurrency = number("SEND_CONCURRENCY", None, integer=True, minimum=1)
        return cls(
            secret_id=text("SENDER_SECRET_ID"),
            delivery_table=text("DELIVERY_TABLE"),
            queue_url=text("BLAST_QUEUE_URL"),
            chunk_size=int(number("CHUNK_SIZE", 500, integer=True, minimum=1) or 500),
            worker_concurrency=int(number("WORKER_CONCURRENCY", 1, integer=True, minimum=1) or 1),
            templates_dir=Path(templates) if templates else PACKAGE_TEMPLATES,
            max_send_rate=max_rate,
            send_concurrency=int(concurrency) if concurrency is not None else None,
            ledger_ttl_days=int(number("LEDGER_TTL_DAYS", 180, integer=True, minimum=1) or 180),
            time_margin_ms=int(number("TIME_MARGIN_MS", 30_000, integer=True, minimum=0) or 0),
            region=text("AWS_REGION") or text("AWS_DEFAULT_REGION"),
            ses_management_rate=float(number("SES_MANAGEMENT_RATE", 1.0, integer=False, minimum=0.01) or 1.0),
        )
