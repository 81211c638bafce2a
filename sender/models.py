"""Typed data at the boundaries: the event, recipients, delivery records and their statuses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError, field_validator, model_validator

from sender.errors import InvalidEvent

BLAST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TEMPLATE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# SES EmailTags: names and values of ASCII letters, digits, '_' and '-', at most 256 characters.
SES_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
RESERVED_TAGS = frozenset({"blast_id"})


class Status(StrEnum):
    """A delivery record's status (CONTRACT)."""

    SENT = "sent"
    DRY_RUN = "dry_run"
    SUPPRESSED = "suppressed"
    INVALID = "invalid"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"


class BlastStatus(StrEnum):
    """A response's status (CONTRACT)."""

    COMPLETE = "complete"
    PARTIAL = "partial"
    QUEUED = "queued"
    REFUSED = "refused"


Action = Literal["send", "preflight", "status", "doctor"]


class BlastEvent(BaseModel):
    """The invoke payload. Unknown keys are refused: a typo such as `dryrun` must not send for real."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action = "send"
    blast_id: str | None = None
    template: str | None = None
    recipients: list[Any] | None = None
    recipients_uri: str | None = None
    globals: dict[str, Any] = {}
    tags: dict[str, str] = {}
    dry_run: StrictBool = False
    require_dkim: StrictBool = True
    resend_unknown: StrictBool = False

    @field_validator("blast_id")
    @classmethod
    def _blast_id(cls, v: str | None) -> str | None:
        if v is not None and not BLAST_ID_RE.fullmatch(v):
            raise ValueError("must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
        return v

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and not TEMPLATE_RE.fullmatch(v):
            raise ValueError("must match ^[a-z0-9][a-z0-9_-]{0,63}$")
        return v

    @field_validator("recipients_uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+\.(csv|jsonl)", v):
            raise ValueError("must be s3://BUCKET/KEY ending in .csv or .jsonl")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not SES_TAG_RE.fullmatch(name) or not SES_TAG_RE.fullmatch(value):
                raise ValueError(f"tag {name!r}: names and values may hold only letters, digits, '_' and '-' (1-256)")
            if name in RESERVED_TAGS:
                raise ValueError(f"tag {name!r} is set by the sender")
        if len(v) > 40:
            raise ValueError("at most 40 tags")
        return v

    @model_validator(mode="after")
    def _per_action(self) -> BlastEvent:
        if self.action in ("send", "preflight"):
            if self.blast_id is None:
                raise ValueError("blast_id: required")
            if self.template is None:
                raise ValueError("template: required")
            if (self.recipients is None) == (self.recipients_uri is None):
                raise ValueError("exactly one of recipients and recipients_uri is required")
        elif self.action == "status":
            if self.blast_id is None:
                raise ValueError("blast_id: required")
        return self

    @property
    def recipient_count(self) -> int | None:
        """How many recipients, when known without reading a list."""
        return len(self.recipients) if self.recipients is not None else None


def parse_event(raw: Any) -> BlastEvent:
    """Parse and validate an invoke payload, or raise InvalidEvent naming the field."""
    if not isinstance(raw, dict):
        raise InvalidEvent(f"the event must be a JSON object, not {type(raw).__name__}")
    try:
        return BlastEvent.model_validate(raw)
    except ValidationError as e:
        raise InvalidEvent(describe_validation_error(e)) from None


def describe_validation_error(e: ValidationError) -> str:
    """One line per problem, naming the field and never echoing values (they may be personal data)."""
    parts = []
    for err in e.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "literal_error" and loc == "action":
            msg = "unknown action; expected send, preflight, status or doctor"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient whose address is valid and normalised; `key` is the ledger key (lower-cased)."""

    email: str
    name: str | None
    vars: dict[str, Any]
    position: int  # 1-based position in the list (line number for files)

    @property
    def key(self) -> str:
        return self.email.lower()


@dataclass(frozen=True, slots=True)
class BadRecipient:
    """An entry of the list that cannot be a recipient; becomes an `invalid` record."""

    email: str
    reason: str
    position: int


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class DeliveryRecord:
    """One recipient's outcome (CONTRACT fields)."""

    blast_id: str
    email: str
    status: Status
    message_id: str | None = None
    error_code: str | None = None
    reason: str | None = None
    attempts: int = 0
    at: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blast_id": self.blast_id,
            "email": self.email,
            "status": self.status.value,
            "message_id": self.message_id,
            "error_code": self.error_code,
            "reason": self.reason,
            "attempts": self.attempts,
            "at": self.at,
        }


def safe_blast_id(raw: Any) -> str | None:
    """The event's blast_id when it is a valid one, else None: a response never echoes an invalid value."""
    value = raw.get("blast_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and BLAST_ID_RE.fullmatch(value) else None


def refused(blast_id: str | None, code: str, message: str, *, dry_run: bool = False) -> dict[str, Any]:
    """The response for a blast that did not start."""
    return {
        "blast_id": blast_id,
        "status": BlastStatus.REFUSED.value,
        "dry_run": dry_run,
        "error": {"code": code, "message": message},
        "counts": {s.value: 0 for s in Status},
        "records": [],
    }
