"""The DynamoDB delivery ledger against moto: claims, outcomes, notes, operator resends, errors, status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sender.errors import ConfigError
from sender.ledger import ClaimResult, DynamoLedger, LedgerError
from sender.models import DeliveryRecord, Status, parse_event
from sender.pipeline import Deps, run_blast
from sender.render import Renderer
from sender.settings import PACKAGE_TEMPLATES, Settings
from sender.status import blast_status
from sender.throttle import RateLimiter
from sender.wiring import open_recipients
from tests.conftest import FakeSes

TABLE = "deliveries"
B = "spring-2027"
GLOBALS = {"regatta": "R", "event_date": "d", "boarding_time": "t", "dock": "c", "boat": "Jada", "booking_url": "u",
           "contact_email": "c@example.com"}


def create_table(client: Any, name: str = TABLE) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "blast_id", "KeyType": "HASH"}, {"AttributeName": "email", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "blast_id", "AttributeType": "S"},
            {"AttributeName": "email", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client)
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(dynamodb: Any, clock: Clock) -> DynamoLedger:
    return DynamoLedger(TABLE, ttl_days=30, client=dynamodb, clock=clock)


def item(client: Any, email: str, blast_id: str = B) -> dict[str, Any]:
    answer = client.get_item(TableName=TABLE, Key={"blast_id": {"S": blast_id}, "email": {"S": email}})
    return {k: next(iter(v.values())) for k, v in answer.get("Item", {}).items()}


def sent(email: str, message_id: str = "m-1", attempts: int = 1) -> DeliveryRecord:
    return DeliveryRecord(B, email, Status.SENT, message_id=message_id, attempts=attempts)


# --- claims ------------------------------------------------------------------------------------------------
def test_first_claim_is_ours_and_stores_sending_with_ttl(ledger: DynamoLedger, dynamodb: Any, clock: Clock) -> None:
    claim = ledger.claim(B, "ann@example.com")
    assert claim.result is ClaimResult.CLAIMED and claim.attempts == 0
    stored = item(dynamodb, "ann@example.com")
    assert stored["status"] == "sending" and stored["attempts"] == "1"
    assert int(stored["expires_at"]) == pytest.approx(clock.now + 30 * 86_400, abs=2)


def test_a_claim_in_flight_is_in_doubt_for_anyone_else(ledger: DynamoLedger) -> None:
    ledger.claim(B, "ann@example.com")
    assert ledger.claim(B, "ann@example.com").result is ClaimResult.IN_DOUBT


def test_sent_answers_sent_with_the_message_id(ledger: DynamoLedger) -> None:
    ledger.claim(B, "ann@example.com")
    ledger.settle(sent("Ann@example.com", "0100-abc"))
    claim = ledger.claim(B, "ann@example.com", resend_unknown=True)
    assert claim.result is ClaimResult.SENT and claim.message_id == "0100-abc" and claim.attempts == 1


def test_the_same_address_in_another_blast_is_a_new_claim(ledger: DynamoLedger) -> None:
    ledger.claim(B, "ann@example.com")
    ledger.settle(sent("ann@example.com"))
    assert ledger.claim("autumn-2027", "ann@example.com").result is ClaimResult.CLAIMED


def test_failed_is_claimed_again_counting_earlier_attempts(ledger: DynamoLedger, dynamodb: Any) -> None:
    ledger.claim(B, "ann@example.com")
    ledger.settle(DeliveryRecord(B, "ann@example.com", Status.FAILED, error_code="Throttling", attempts=8))
    claim = ledger.claim(B, "ann@example.com")
    assert claim.result is ClaimResult.CLAIMED and claim.attempts == 8
    ledger.settle(sent("ann@example.com", attempts=9))
    stored = item(dynamodb, "ann@example.com")
    assert stored["status"] == "sent" and stored["attempts"] == "9" and "error_code" not in stored


def test_unknown_is_never_claimed_without_the_operators_choice(ledger: DynamoLedger) -> None:
    ledger.claim(B, "ann@example.com")
    ledger.settle(DeliveryRecord(B, "ann@example.com", Status.UNKNOWN, error_code="ReadTimeoutError", attempts=1))
    for _ in range(3):
        assert ledger.claim(B, "ann@example.com").result is ClaimResult.IN_DOUBT


def test_resend_unknown_claims_it_once_and_records_the_resend(ledger: DynamoLedger, dynamodb: Any) -> None:
    ledger.claim(B, "ann@example.com")
    ledger.settle(DeliveryRecord(B, "ann@example.com", Status.UNKNOWN, attempts=1))
    claim = ledger.claim(B, "ann@example.com", resend_unknown=True)
    assert claim.result is ClaimResult.CLAIMED and claim.attempts == 1
    assert item(dynamodb, "ann@example.com")["resends"] == "1"
    # While that resend is in flight, a second resend does not take it.
    assert ledger.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.IN_DOUBT
    ledger.settle(sent("ann@example.com", attempts=2))
    assert ledger.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.SENT


def test_a_stale_sending_claim_is_resent_only_by_choice_and_only_when_stale(
    ledger: DynamoLedger, clock: Clock
) -> None:
    ledger.claim(B, "ann@example.com")  # ...and the process died
    assert ledger.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.IN_DOUBT  # may be in flight
    clock.now += ledger.stale_after_s + 1
    assert ledger.claim(B, "ann@example.com").result is ClaimResult.IN_DOUBT
    assert ledger.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.CLAIMED


def test_two_resends_racing_for_one_unknown_cannot_both_win(dynamodb: Any, clock: Clock) -> None:
    first = DynamoLedger(TABLE, ttl_days=30, client=dynamodb, clock=clock)
    second = DynamoLedger(TABLE, ttl_days=30, client=dynamodb, clock=clock)
    first.claim(B, "ann@example.com")
    first.settle(DeliveryRecord(B, "ann@example.com", Status.UNKNOWN))
    results = [first.claim(B, "ann@example.com", resend_unknown=True).result,
               second.claim(B, "ann@example.com", resend_unknown=True).result]
    assert sorted(results) == [ClaimResult.CLAIMED, ClaimResult.IN_DOUBT]


class RetriedAfterLostAnswer:
    """A client whose first UpdateItem reaches DynamoDB but whose answer is lost, so it is sent again (as
    botocore's retry does after a read timeout)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.retried = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if not self.retried:
            self.retried = True
            self._client.update_item(**kwargs)
        return self._client.update_item(**kwargs)


def test_a_claim_retried_after_a_lost_answer_is_still_ours(dynamodb: Any) -> None:
    client = RetriedAfterLostAnswer(dynamodb)
    ledger = DynamoLedger(TABLE, ttl_days=30, client=client)
    claim = ledger.claim(B, "ann@example.com")
    assert client.retried and claim.result is ClaimResult.CLAIMED and claim.attempts == 0


# --- outcomes and notes ------------------------------------------------------------------------------------
def test_a_late_failure_never_overwrites_sent(ledger: DynamoLedger, dynamodb: Any) -> None:
    ledger.settle(sent("ann@example.com"))
    ledger.settle(DeliveryRecord(B, "ann@example.com", Status.FAILED, error_code="X"))
    assert item(dynamodb, "ann@example.com")["status"] == "sent"


def test_a_slow_run_does_not_overwrite_a_claim_taken_over_by_a_resend(dynamodb: Any, clock: Clock) -> None:
    slow = DynamoLedger(TABLE, ttl_days=30, client=dynamodb, clock=clock)
    operator = DynamoLedger(TABLE, ttl_days=30, client=dynamodb, clock=clock)
    slow.claim(B, "ann@example.com")
    clock.now += slow.stale_after_s + 1
    assert operator.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.CLAIMED
    slow.settle(DeliveryRecord(B, "ann@example.com", Status.FAILED, error_code="X"))
    assert item(dynamodb, "ann@example.com")["status"] == "sending"


def test_note_stores_invalid_and_suppressed_but_never_over_a_send(ledger: DynamoLedger, dynamodb: Any) -> None:
    ledger.note(DeliveryRecord(B, "not-an-address", Status.INVALID, error_code="InvalidRecipient", reason="line 4"))
    assert item(dynamodb, "not-an-address")["status"] == "invalid"
    for status in ("sent", "sending", "unknown"):
        key = f"{status}@example.com"
        ledger.claim(B, key)
        if status != "sending":
            ledger.settle(DeliveryRecord(B, key, Status(status)))
        ledger.note(DeliveryRecord(B, key, Status.SUPPRESSED, error_code="BOUNCE"))
        assert item(dynamodb, key)["status"] == status


def test_note_never_writes_a_reserved_metadata_key_or_an_empty_one(ledger: DynamoLedger, dynamodb: Any) -> None:
    ledger.note(DeliveryRecord(B, "#plan", Status.INVALID))
    ledger.note(DeliveryRecord(B, "", Status.INVALID))
    assert dynamodb.scan(TableName=TABLE)["Count"] == 0


# --- errors --------------------------------------------------------------------------------------------------
def test_a_missing_table_is_a_ledger_error_naming_it(dynamodb: Any) -> None:
    ledger = DynamoLedger("no-such-table", ttl_days=30, client=dynamodb)
    with pytest.raises(LedgerError, match=r"no-such-table.*does not exist") as caught:
        ledger.claim(B, "ann@example.com")
    assert caught.value.code == "LedgerUnavailable"


def test_a_ledger_that_cannot_be_written_sends_nothing(dynamodb: Any, fake_ses: FakeSes, sender_config: Any) -> None:
    deps = Deps(config=sender_config, renderer=Renderer(PACKAGE_TEMPLATES), open_recipients=open_recipients,
                ses=fake_ses, ledger=DynamoLedger("no-such-table", ttl_days=30, client=dynamodb),  # type: ignore[arg-type]
                limiter=RateLimiter(100_000), send_concurrency=1)
    event = parse_event({"blast_id": B, "template": "regatta-invite", "globals": GLOBALS,
                         "recipients": [{"email": f"u{i}@example.com"} for i in range(5)]})
    with pytest.raises(LedgerError) as info:  # refused before anything is sent: no claim, no send
        run_blast(event, deps)
    assert info.value.code == "LedgerUnavailable" and "no-such-table" in info.value.message
    assert fake_ses.send_calls == 0


def test_a_dry_run_writes_nothing_to_the_ledger(dynamodb: Any, fake_ses: FakeSes, sender_config: Any) -> None:
    ledger = DynamoLedger(TABLE, ttl_days=30, client=dynamodb)
    deps = Deps(config=sender_config, renderer=Renderer(PACKAGE_TEMPLATES), open_recipients=open_recipients,
                ses=fake_ses, ledger=ledger, limiter=RateLimiter(100_000))  # type: ignore[arg-type]
    event = parse_event({"blast_id": B, "template": "regatta-invite", "dry_run": True,
                         "globals": GLOBALS,
                         "recipients": [{"email": "ann@example.com"}, {"email": "bad"}]})
    response = run_blast(event, deps)
    assert response["counts"]["dry_run"] == 1 and response["counts"]["invalid"] == 1
    assert dynamodb.scan(TableName=TABLE)["Count"] == 0 and fake_ses.send_calls == 0


# --- status --------------------------------------------------------------------------------------------------
def test_status_without_a_ledger_is_refused_as_config_error() -> None:
    with pytest.raises(ConfigError, match="DELIVERY_TABLE"):
        blast_status(B, Settings())


def test_status_counts_lists_unknowns_and_skips_metadata(ledger: DynamoLedger, dynamodb: Any, clock: Clock) -> None:
    for i in range(3):
        ledger.claim(B, f"s{i}@example.com")
        ledger.settle(sent(f"s{i}@example.com"))
    ledger.claim(B, "u@example.com")
    ledger.settle(DeliveryRecord(B, "U@example.com", Status.UNKNOWN, attempts=1, at="2030-01-01T00:00:00Z"))
    ledger.note(DeliveryRecord(B, "bad", Status.INVALID))
    ledger.claim(B, "inflight@example.com")
    dynamodb.put_item(TableName=TABLE, Item={"blast_id": {"S": B}, "email": {"S": "#plan"}, "total": {"N": "7"}})

    summary = blast_status(B, Settings(), ledger=ledger, clock=clock)
    assert summary["counts"] == {
        "sent": 3, "dry_run": 0, "failed": 0, "invalid": 1, "suppressed": 0, "duplicate": 0, "unknown": 1, "sending": 1
    }
    assert summary["status"] == "in_progress" and summary["total"] == 7 and summary["recipients"] == 6
    assert summary["unknown"] == [{"email": "U@example.com", "attempts": 1, "at": "2030-01-01T00:00:00Z",
                                   "error_code": None, "reason": None}]
    assert summary["last_update"] == "2030-01-01T00:00:00Z"

    clock.now += ledger.stale_after_s + 1  # the in-flight claim's run died
    later = blast_status(B, Settings(), ledger=ledger, clock=clock)
    assert later["counts"]["unknown"] == 2 and later["counts"]["sending"] == 0
    assert later["status"] == "partial"  # 6 of the 7 planned recipients recorded
    assert any("resend-unknown" in note for note in later["notes"])


def test_status_of_an_unknown_blast_is_not_found(ledger: DynamoLedger) -> None:
    summary = blast_status("never-sent", Settings(), ledger=ledger)
    assert summary["status"] == "not_found" and summary["recipients"] == 0


def test_status_lists_at_most_100_unknowns_but_counts_them_all(
    ledger: DynamoLedger, dynamodb: Any, clock: Clock
) -> None:
    for i in range(130):
        ledger.settle(DeliveryRecord(B, f"u{i:03d}@example.com", Status.UNKNOWN))
    summary = blast_status(B, Settings(), ledger=ledger, clock=clock)
    assert summary["unknown_total"] == 130 and len(summary["unknown"]) == 100 and summary["unknown_truncated"]
    assert summary["status"] == "complete"


def test_an_unknown_is_resent_at_most_once_however_often_the_resend_runs(ledger: DynamoLedger) -> None:
    assert ledger.claim(B, "ann@example.com").result is ClaimResult.CLAIMED
    ledger.settle(DeliveryRecord(B, "ann@example.com", Status.UNKNOWN, attempts=1))
    assert ledger.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.CLAIMED
    ledger.settle(DeliveryRecord(B, "ann@example.com", Status.UNKNOWN, attempts=2))  # the resend's answer lost too
    assert ledger.claim(B, "ann@example.com", resend_unknown=True).result is ClaimResult.IN_DOUBT
