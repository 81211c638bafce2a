"""The delivery ledger: who has been sent what under a blast_id, so nobody is sent twice.

`NullLedger` is used without DELIVERY_TABLE: it keeps nothing across runs (within one run the
recipient de-duplication still holds). The DynamoDB ledger claims each recipient with a conditional
write before sending, and settles the claim after SES answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sender.models import DeliveryRecord


class ClaimResult(StrEnum):
    CLAIMED = "claimed"  # ours to send now
    SENT = "sent"  # already sent under this blast_id
    IN_DOUBT = "in_doubt"  # a claim whose send outcome is unknown: not re-sent automatically


@dataclass(frozen=True, slots=True)
class Claim:
    result: ClaimResult
    attempts: int = 0  # attempts made before this claim
    message_id: str | None = None


class Ledger(Protocol):
    durable: bool

    def claim(self, blast_id: str, key: str, *, resend_unknown: bool = False) -> Claim:
        """Claim one recipient (key = lower-cased email) for sending."""
        ...

    def settle(self, record: DeliveryRecord) -> None:
        """Write the outcome of a claimed send (sent, failed or unknown)."""
        ...

    def note(self, record: DeliveryRecord) -> None:
        """Store a record that needed no claim (invalid, suppressed), never over a sent one."""
        ...


class NullLedger:
    """No cross-run memory."""

    durable = False

    def claim(self, blast_id: str, key: str, *, resend_unknown: bool = False) -> Claim:
        return Claim(ClaimResult.CLAIMED)

    def settle(self, record: DeliveryRecord) -> None:
        return None

    def note(self, record: DeliveryRecord) -> None:
        return None
