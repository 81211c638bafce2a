"""The delivery ledger: who has been sent what under a blast_id, so nobody is sent twice.

`NullLedger` is used without DELIVERY_TABLE: it keeps nothing across runs (within one run the
recipient de-duplication still holds). `DynamoLedger` claims each recipient with a conditional
write just before sending, and settles the claim after SES answers: a claim whose send never
settled (the process died) is `unknown` and is never re-sent unless an operator asks for it.
At most once per recipient per blast_id, whatever retries, resumes or crashes happen.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sender.errors import ConfigError, SenderError
from sender.log import logger
from sender.models import DeliveryRecord, Status
from sender.settings import default_region


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

    def started_before(self, blast_id: str) -> bool:
        """Whether an earlier run of this blast_id got past its checks (this run is a resume)."""
        ...

    def mark_started(self, blast_id: str) -> None:
        """Remember that a run of this blast_id got past its checks."""
        ...


class NullLedger:
    """No cross-run memory."""

    durable = False

    def started_before(self, blast_id: str) -> bool:
        return False

    def mark_started(self, blast_id: str) -> None:
        return None

    def claim(self, blast_id: str, key: str, *, resend_unknown: bool = False) -> Claim:
        return Claim(ClaimResult.CLAIMED)

    def settle(self, record: DeliveryRecord) -> None:
        return None

    def note(self, record: DeliveryRecord) -> None:
        return None


# --- DynamoDB ----------------------------------------------------------------------------------------------
# Item keys starting with '#' and holding no '@' are reserved for blast-level metadata (e.g. `#plan`); no
# recipient address can take that form, and `note` never writes one.
META_PREFIX = "#"
STARTED_KEY = "#started"  # written when a real run first gets past its checks
PLAN_KEY = "#plan"  # a fan-out plan (sender.fanout)
FATAL_KEY = "#fatal"  # a blast-fatal stop shared by the workers of a plan generation
CHUNK_PREFIX = "#chunk#"  # one item per fan-out chunk and generation
MAX_SORT_KEY_BYTES = 1024
SETTLED = ("failed", "invalid", "suppressed", "dry_run")  # a claim may be made over these
HELD = ("sent", "sending", "unknown")  # never overwritten by a claim (except an operator's resend) or a note
STALE_AFTER_S = 900  # a `sending` claim this old belongs to a run that died (Lambda's limit is 15 minutes)
CLAIM_ROUNDS = 4
MAX_RESENDS = 1  # an unknown recipient is re-sent by an operator's choice at most this often

_NAMES = {"#s": "status", "#at": "at"}  # both are DynamoDB reserved words
THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "LimitExceededException"}
)


class LedgerError(SenderError):
    """The delivery ledger (DELIVERY_TABLE) cannot be read or written: nothing more is sent."""

    code = "LedgerUnavailable"


def generation_of(item: dict[str, Any]) -> int:
    """The fan-out plan generation a blast-level item belongs to (items written before generations: 1)."""
    try:
        return int(item.get("generation") or 1)
    except (TypeError, ValueError):
        return 1


def is_meta_key(key: str) -> bool:
    """A reserved blast-level item (`#plan`, `#fatal`...), not a recipient."""
    return key.startswith(META_PREFIX) and "@" not in key


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value)) if float(value).is_integer() else repr(float(value))}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item as plain values (S, N, BOOL and NULL are all we write)."""
    out: dict[str, Any] = {}
    for name, typed in item.items():
        ((kind, value),) = typed.items()
        if kind == "N":
            number = float(value)
            out[name] = int(number) if number.is_integer() else number
        elif kind == "NULL":
            out[name] = None
        else:
            out[name] = value
    return out


def _ledger_error(table: str, error: Exception, doing: str) -> LedgerError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code") or "Unknown")
        if code == "ResourceNotFoundException":
            message = f"the delivery table {table!r} (DELIVERY_TABLE) does not exist in this account and region"
        elif code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
            message = (
                f"access denied to the delivery table {table!r} while {doing}: the role needs dynamodb:GetItem, "
                "UpdateItem and Query on it"
            )
        elif code in THROTTLE_CODES:
            message = f"the delivery table {table!r} kept throttling while {doing} ({code})"
        else:
            message = f"the delivery table {table!r} answered {code} while {doing}"
        return LedgerError(message)
    return LedgerError(f"the delivery table {table!r} could not be reached while {doing} ({type(error).__name__})")


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def ledger_client_config() -> Config:
    # botocore retries throttles and dropped connections; a claim retried after a lost answer is recognised
    # as our own by its claim_id, so retrying a conditional write is safe. Claims run in the sending threads:
    # one pooled connection for each (the pipeline's MAX_CONCURRENCY), never a new TLS handshake per claim.
    return Config(
        retries={"mode": "standard", "total_max_attempts": 6},
        connect_timeout=5,
        read_timeout=10,
        max_pool_connections=64,
    )


class DynamoLedger:
    """Claims and records in DynamoDB (`blast_id` + lower-cased `email`), one conditional write per claim.

    States: absent -> `sending` (claimed) -> `sent` | `failed` | `unknown`. A claim succeeds over an absent
    item or a settled one that was not sent (`failed`, `invalid`, `suppressed`); `sent` answers SENT, and
    `sending`/`unknown` answer IN_DOUBT unless the operator asked to re-send those (`resend_unknown`): then an
    `unknown` one, or a `sending` one older than `stale_after_s` (its run died), is claimed once more, the
    takeover conditioned on the claim it replaces so two resends cannot both win.
    """

    durable = True

    def __init__(
        self,
        table_name: str,
        *,
        ttl_days: int,
        client: Any = None,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            client = boto3.client("dynamodb", region_name=default_region(), config=ledger_client_config())
        self._client = client
        self.table = table_name
        self.ttl_s = int(ttl_days) * 86_400
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._tokens: dict[tuple[str, str], str] = {}  # our live claims: (blast_id, key) -> claim_id
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Any, *, needed_for: str, why: str) -> DynamoLedger:
        """The ledger named by DELIVERY_TABLE, or a ConfigError saying what needs it and why."""
        if not settings.delivery_table:
            raise ConfigError(f"{needed_for} needs the delivery ledger: set DELIVERY_TABLE ({why})")
        return cls(settings.delivery_table, ttl_days=settings.ledger_ttl_days)

    # --- runs ---------------------------------------------------------------------------------------------
    def started_before(self, blast_id: str) -> bool:
        return self.get(blast_id, STARTED_KEY) is not None

    def mark_started(self, blast_id: str) -> None:
        self.put_meta(blast_id, STARTED_KEY, {"at": _iso(self._clock())}, expect=None)

    # --- claims ------------------------------------------------------------------------------------------
    def claim(self, blast_id: str, key: str, *, resend_unknown: bool = False) -> Claim:
        token = uuid.uuid4().hex
        try:
            for _ in range(CLAIM_ROUNDS):
                won, old = self._try_claim(blast_id, key, token, takeover=None)
                if won:  # `old` is the item before: absent, or a settled failure whose attempts count on
                    return self._claimed(blast_id, key, token, attempts=int(old.get("attempts") or 0))
                if "status" not in old:  # the item vanished (TTL) between the write and the read: try again
                    continue
                status = old["status"]
                attempts = int(old.get("attempts") or 0)
                if old.get("claim_id") == token:  # our own write, retried after its answer was lost
                    return self._claimed(blast_id, key, token, attempts=max(attempts - 1, 0))
                if status == "sent":
                    return Claim(ClaimResult.SENT, attempts=attempts, message_id=old.get("message_id"))
                if status in SETTLED:  # changed between our write and the read: try again
                    continue
                if not (resend_unknown and self._resendable(old)):
                    return Claim(ClaimResult.IN_DOUBT, attempts=attempts)
                taken, _ = self._try_claim(blast_id, key, token, takeover=old)
                if taken:
                    logger.warning(
                        "re-sending a recipient whose earlier send is in doubt (operator's choice)",
                        extra={"blast_id": blast_id, "was": status, "attempts": attempts},
                    )
                    return self._claimed(blast_id, key, token, attempts=attempts)
                # Someone else moved it first: look again.
        except (ClientError, BotoCoreError) as e:
            raise _ledger_error(self.table, e, "claiming a recipient") from e
        return Claim(ClaimResult.IN_DOUBT)

    def _claimed(self, blast_id: str, key: str, token: str, *, attempts: int) -> Claim:
        with self._lock:
            self._tokens[(blast_id, key)] = token
        return Claim(ClaimResult.CLAIMED, attempts=attempts)

    def _resendable(self, old: dict[str, Any]) -> bool:
        # Once: an operator's resend is re-sent at most one time. Otherwise a resend whose own answer was lost
        # (unknown again) would go out once more with every retry or continuation of the resend event.
        if int(old.get("resends") or 0) >= MAX_RESENDS:
            return False
        if old["status"] == "unknown":
            return True
        return old["status"] == "sending" and self.claim_is_stale(old, self._clock())

    def claim_is_stale(self, item: dict[str, Any], now: float) -> bool:
        """A `sending` claim this old belongs to a run that died (it outlived the longest invocation)."""
        return now - float(item.get("claimed_at") or 0) >= self.stale_after_s

    def _try_claim(
        self, blast_id: str, key: str, token: str, *, takeover: dict[str, Any] | None
    ) -> tuple[bool, dict[str, Any]]:
        """One conditional write: (whether it succeeded, the item as it was before; {} if absent)."""
        now = self._clock()
        values: dict[str, Any] = {
            ":sending": _s("sending"),
            ":token": _s(token),
            ":now": _n(round(now, 3)),
            ":at": _s(_iso(now)),
            ":exp": _n(int(now) + self.ttl_s),
            ":zero": _n(0),
            ":one": _n(1),
        }
        update = (
            "SET #s = :sending, claim_id = :token, claimed_at = :now, #at = :at, expires_at = :exp, "
            "attempts = if_not_exists(attempts, :zero) + :one"
        )
        if takeover is None:
            settled = [f":settled{i}" for i in range(len(SETTLED))]
            values.update({name: _s(status) for name, status in zip(settled, SETTLED, strict=True)})
            condition = f"attribute_not_exists(email) OR #s IN ({', '.join(settled)})"
        else:
            update += ", resends = if_not_exists(resends, :zero) + :one"
            values[":was"] = _s(takeover["status"])
            condition = "#s = :was"
            if takeover.get("claim_id"):
                values[":was_claim"] = _s(takeover["claim_id"])
                condition += " AND claim_id = :was_claim"
            else:
                condition += " AND attribute_not_exists(claim_id)"
        try:
            answer = self._client.update_item(
                TableName=self.table,
                Key=self._key(blast_id, key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as e:
            if not _condition_failed(e):
                raise
            item: Any = e.response.get("Item")
            return False, plain(item) if item is not None else self._get(blast_id, key)
        return True, plain(answer.get("Attributes") or {})

    def _get(self, blast_id: str, key: str) -> dict[str, Any]:
        answer = self._client.get_item(TableName=self.table, Key=self._key(blast_id, key), ConsistentRead=True)
        return plain(answer.get("Item") or {})

    # --- outcomes ----------------------------------------------------------------------------------------
    def settle(self, record: DeliveryRecord) -> None:
        """Write a claimed send's outcome. `sent` is always written; anything else only over our own claim
        (or a claim-less item), and never over `sent`."""
        key = record.email.lower()
        with self._lock:
            token = self._tokens.pop((record.blast_id, key), None)
        condition: str | None
        if record.status is Status.SENT:
            condition, values = None, {}
        elif token is not None:
            condition, values = "claim_id = :token", {":token": _s(token)}
        else:
            condition, values = "attribute_not_exists(#s) OR #s <> :sent", {":sent": _s("sent")}
        self._write(record, key, condition, values, "recording an outcome")

    def note(self, record: DeliveryRecord) -> None:
        """Store an invalid or suppressed record, unless the recipient is sent, being sent or in doubt."""
        key = record.email.lower()
        if not key or is_meta_key(key) or len(key.encode("utf-8")) > MAX_SORT_KEY_BYTES:
            return  # nothing to key it by (the response and the log still carry it)
        held = [f":held{i}" for i in range(len(HELD))]
        values: dict[str, Any] = {name: _s(status) for name, status in zip(held, HELD, strict=True)}
        condition = f"attribute_not_exists(email) OR NOT (#s IN ({', '.join(held)}))"
        self._write(record, key, condition, values, "recording a record")

    def _write(
        self, record: DeliveryRecord, key: str, condition: str | None, values: dict[str, Any], doing: str
    ) -> None:
        now = self._clock()
        values = {
            **values,
            ":s": _s(record.status.value),
            ":at": _s(record.at),
            ":attempts": _n(record.attempts),
            ":address": _s(record.email),
            ":exp": _n(int(now) + self.ttl_s),
        }
        sets = ["#s = :s", "#at = :at", "attempts = :attempts", "address = :address"]
        sets.append("expires_at = if_not_exists(expires_at, :exp)")
        removes = []
        for name in ("message_id", "error_code", "reason"):
            value = getattr(record, name)
            if value is None:
                removes.append(name)
            else:
                values[f":{name}"] = _s(str(value))
                sets.append(f"{name} = :{name}")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(record.blast_id, key),
            "UpdateExpression": "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": values,
        }
        if condition is not None:
            kwargs["ConditionExpression"] = condition
        try:
            self._client.update_item(**kwargs)
        except ClientError as e:
            if _condition_failed(e):
                logger.warning(
                    "ledger record not written: the recipient's stored state takes precedence",
                    extra={"blast_id": record.blast_id, "status": record.status.value},
                )
                return
            raise _ledger_error(self.table, e, doing) from e
        except BotoCoreError as e:
            raise _ledger_error(self.table, e, doing) from e

    # --- reading (status) ----------------------------------------------------------------------------------
    def items(self, blast_id: str, attributes: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Every item of one blast, metadata items included, page by page (consistent reads)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "blast_id = :b",
            "ExpressionAttributeValues": {":b": _s(blast_id)},
            "ConsistentRead": True,
        }
        if attributes:
            names = {f"#p{i}": name for i, name in enumerate(("email", *attributes))}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        try:
            while True:
                page = self._client.query(**kwargs)
                for item in page.get("Items", []):
                    yield plain(item)
                last = page.get("LastEvaluatedKey")
                if not last:
                    return
                kwargs["ExclusiveStartKey"] = last
        except (ClientError, BotoCoreError) as e:
            raise _ledger_error(self.table, e, "reading a blast") from e

    def get(self, blast_id: str, key: str) -> dict[str, Any] | None:
        """One item as plain values, or None."""
        try:
            item = self._get(blast_id, key)
        except (ClientError, BotoCoreError) as e:
            raise _ledger_error(self.table, e, "reading a record") from e
        return item or None

    # --- blast-level metadata (fan-out) ---------------------------------------------------------------------
    def put_meta(
        self,
        blast_id: str,
        key: str,
        values: dict[str, Any],
        *,
        expect: dict[str, Any] | None,
        overwrite: bool = False,
    ) -> bool:
        """Write a blast-level item (`#plan`, `#fatal`, `#chunk#...`).

        `overwrite`: unconditionally. Otherwise with `expect` None: only if the item is absent; else only if
        its `planned_at` is still the one in `expect` (optimistic concurrency). False when that condition
        failed (someone else wrote first)."""
        if not is_meta_key(key):
            raise ValueError(f"{key!r} is not a metadata key")
        names = {f"#a{i}": name for i, name in enumerate(values)}
        typed = {f":v{i}": _typed(value) for i, value in enumerate(values.values())}
        typed[":exp"] = _n(int(self._clock()) + self.ttl_s)
        sets = [f"#a{i} = :v{i}" for i in range(len(values))] + ["expires_at = if_not_exists(expires_at, :exp)"]
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(blast_id, key),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": typed,
        }
        if not overwrite:
            if expect is None:
                kwargs["ConditionExpression"] = "attribute_not_exists(email)"
            else:
                names["#was"] = "planned_at"
                typed[":was"] = _typed(expect.get("planned_at"))
                kwargs["ConditionExpression"] = "#was = :was"
        try:
            self._client.update_item(**kwargs)
        except ClientError as e:
            if _condition_failed(e):
                return False
            raise _ledger_error(self.table, e, f"writing {key}") from e
        except BotoCoreError as e:
            raise _ledger_error(self.table, e, f"writing {key}") from e
        return True

    @staticmethod
    def _key(blast_id: str, key: str) -> dict[str, Any]:
        return {"blast_id": _s(blast_id), "email": _s(key)}


def _typed(value: Any) -> dict[str, Any]:
    """A plain value as a low-level DynamoDB attribute (the inverse of `plain`)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return _n(value)
    return _s(str(value))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
