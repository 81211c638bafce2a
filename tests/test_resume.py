"""Exactly once across runs: retried events, a time budget that runs out, and a send whose outcome is unknown.

DynamoDB and S3 are moto (in process); SES is the stand-in on 127.0.0.1, reached by a real sesv2 client,
so the per-recipient counts below are what SES accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sender.config import parse_config
from sender.errors import OutcomeUnknown
from sender.handler import lambda_handler
from sender.ledger import DynamoLedger
from sender.models import parse_event
from sender.pipeline import run_blast
from sender.ses import SesAdapter, client_config
from sender.settings import Settings
from sender.throttle import Pacer
from sender.wiring import build_deps
from tests.conftest import SECRET, FakeContext
from tests.standin.ses_server import SesStandin
from tests.test_ledger import create_table

pytestmark = [pytest.mark.integration, pytest.mark.allow_hosts(["127.0.0.1"])]

TABLE = "deliveries"
GLOBALS = {"regatta": "Spring", "event_date": "1 March", "boarding_time": "9:30", "dock": "C", "boat": "Jada",
           "booking_url": "https://x.example", "contact_email": "b@example.com"}


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandin]:
    with SesStandin(max_send_rate=1000) as ses:
        ses.add_identity("queenofsandiego.com")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", ses.endpoint_url)
        yield ses


@pytest.fixture
def aws(standin: SesStandin) -> Iterator[Any]:
    """moto for DynamoDB, S3 and Secrets Manager; the sesv2 client still reaches the stand-in."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_table(dynamodb, TABLE)
        yield dynamodb


def people(n: int) -> list[dict[str, Any]]:
    return [{"email": f"sailor{i:02d}@example.com", "name": f"Sailor {i}"} for i in range(n)]


def event(recipients: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"blast_id": "regatta-2027", "template": "regatta-invite", "globals": GLOBALS, **extra}
    if "recipients_uri" not in extra:
        raw["recipients"] = recipients
    return raw


def run(
    raw: dict[str, Any],
    *,
    ses: Any = None,
    remaining_ms: Callable[[], int] | None = None,
    ledger: DynamoLedger | None = None,
) -> dict[str, Any]:
    """One run of the pipeline as the CLI and the handler build it, with a real sesv2 client."""
    settings = Settings(delivery_table=TABLE, send_concurrency=4, time_margin_ms=1_000)
    deps = build_deps(
        settings,
        config=parse_config(SECRET),
        ledger=ledger or DynamoLedger(TABLE, ttl_days=7),
        ses=ses or SesAdapter(client=boto3.client("sesv2", config=client_config()), pacer=Pacer(rate=0)),
        remaining_ms=remaining_ms,
    )
    return run_blast(parse_event(raw), deps)


def per_recipient(standin: SesStandin) -> dict[str, int]:
    counts: dict[str, int] = standin.stats()["per_recipient"]
    return counts


# --- the same event twice ------------------------------------------------------------------------------------
def test_the_same_event_twice_sends_nothing_the_second_time(aws: Any, standin: SesStandin) -> None:
    first = run(event(people(12)))
    assert first["status"] == "complete" and first["counts"]["sent"] == 12 and first["idempotent"] is True
    second = run(event(people(12)))
    assert second["status"] == "complete"
    assert second["counts"]["duplicate"] == 12 and second["counts"]["sent"] == 0
    assert {r["status"] for r in second["records"]} == {"duplicate"}
    sent_ids = {r["email"]: r["message_id"] for r in first["records"]}
    assert {r["email"]: r["message_id"] for r in second["records"]} == sent_ids  # duplicates name the message
    assert set(per_recipient(standin).values()) == {1} and len(per_recipient(standin)) == 12


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # a status answer emits no metrics
def test_a_retried_invocation_through_the_handler_sends_nothing_twice(
    aws: Any, standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("secretsmanager").create_secret(Name="jada/sender", SecretString=json.dumps(SECRET))
    monkeypatch.setenv("SENDER_SECRET_ID", "jada/sender")
    monkeypatch.setenv("DELIVERY_TABLE", TABLE)
    monkeypatch.setenv("SES_MANAGEMENT_RATE", "100")
    recipients = [*people(5), {"email": "not-an-address"}]
    first = lambda_handler(event(recipients), FakeContext())
    second = lambda_handler(event(recipients), FakeContext())
    assert first["counts"]["sent"] == 5 and second["counts"]["sent"] == 0
    assert second["counts"]["duplicate"] == 5 and second["counts"]["invalid"] == 1
    assert standin.stats()["accepted"] == 5

    status = lambda_handler({"action": "status", "blast_id": "regatta-2027"}, FakeContext())
    assert status["status"] == "complete"
    assert status["counts"] == {
        "sent": 5, "dry_run": 0, "failed": 0, "invalid": 1, "suppressed": 0, "duplicate": 0, "unknown": 0, "sending": 0
    }


# --- the time budget ---------------------------------------------------------------------------------------
def test_a_run_out_of_time_is_partial_and_the_next_run_finishes_exactly_once(aws: Any, standin: SesStandin) -> None:
    # The invocation "runs out of time" once SES has accepted 6 messages: nothing more is claimed, and sends
    # queued but not yet started fail as out of time (unsent: the next run sends them).
    def remaining_ms() -> int:
        return 60_000 if standin.stats(per_recipient=False)["accepted"] < 6 else 500

    first = run(event(people(30)), remaining_ms=remaining_ms)
    assert first["status"] == "partial"
    processed = sum(first["counts"].values())
    assert first["counts"]["sent"] >= 6 and first["counts"]["sent"] + first["counts"]["failed"] == processed < 30
    assert all(r["error_code"] == "OutOfTime" for r in first["records"] if r["status"] == "failed")
    assert first["remaining"] == 30 - processed
    assert "invoke the same event again" in first["continue"]
    assert standin.stats()["accepted"] == first["counts"]["sent"]  # every call in flight finished and was recorded

    second = run(event(people(30)))
    assert second["status"] == "complete"
    assert second["counts"]["duplicate"] == first["counts"]["sent"]
    assert second["counts"]["sent"] == 30 - first["counts"]["sent"]
    counts = per_recipient(standin)
    assert len(counts) == 30 and set(counts.values()) == {1}


def test_an_s3_list_cut_short_resumes_too(aws: Any, standin: SesStandin) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="jada-lists", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    body = "email,name\n" + "".join(f"{p['email']},{p['name']}\n" for p in people(20)) + "oops\n"
    s3.put_object(Bucket="jada-lists", Key="spring.csv", Body=body.encode())
    raw = event(recipients_uri="s3://jada-lists/spring.csv")

    first = run(raw, remaining_ms=lambda: 60_000 if standin.stats(per_recipient=False)["accepted"] < 4 else 0)
    assert first["status"] == "partial" and first["remaining"] is None  # an S3 list's length is not known
    second = run(raw)
    assert second["status"] == "complete" and second["counts"]["invalid"] == 1
    assert second["counts"]["sent"] + second["counts"]["duplicate"] == 20
    assert set(per_recipient(standin).values()) == {1} and len(per_recipient(standin)) == 20


# --- a crash between claim and send ---------------------------------------------------------------------------
class Crash(BaseException):
    """The process dying: nothing after it runs, no record is written."""


class CrashingSes(SesAdapter):
    """Dies (once) between the claim and the SendEmail for one address."""

    def __init__(self, doomed: str) -> None:
        super().__init__(client=boto3.client("sesv2", config=client_config()), pacer=Pacer(rate=0))
        self.doomed = doomed

    def send(self, request: dict[str, Any]) -> str:
        if request["Destination"]["ToAddresses"] == [self.doomed]:
            raise Crash
        return super().send(request)


def test_a_crash_between_claim_and_send_is_unknown_not_retried_and_resent_once_by_choice(
    aws: Any, standin: SesStandin
) -> None:
    doomed = "sailor03@example.com"
    with pytest.raises(Crash):
        run(event(people(8)), ses=CrashingSes(doomed))
    assert doomed not in per_recipient(standin)

    retry = run(event(people(8)))  # Lambda's retry of the same event
    records = {r["email"]: r for r in retry["records"]}
    assert records[doomed]["status"] == "unknown" and records[doomed]["attempts"] == 1
    assert doomed not in per_recipient(standin)
    assert set(per_recipient(standin).values()) == {1} and len(per_recipient(standin)) == 7

    # The operator asks right away: the claim may still be in flight somewhere, so it is still not sent.
    early = run(event(people(8), resend_unknown=True))
    assert {r["email"]: r["status"] for r in early["records"]}[doomed] == "unknown"
    assert doomed not in per_recipient(standin)

    # Later (the crashed run cannot be alive any more), the operator's explicit choice re-sends it, once.
    later = DynamoLedger(TABLE, ttl_days=7, clock=lambda: time.time() + 3600)
    resend = run(event(people(8), resend_unknown=True), ledger=later)
    assert {r["email"]: r["status"] for r in resend["records"]}[doomed] == "sent"
    assert resend["counts"]["duplicate"] == 7
    again = run(event(people(8), resend_unknown=True), ledger=later)
    assert again["counts"]["duplicate"] == 8 and again["counts"]["sent"] == 0
    assert set(per_recipient(standin).values()) == {1} and len(per_recipient(standin)) == 8
    stored = aws.get_item(TableName=TABLE, Key={"blast_id": {"S": "regatta-2027"}, "email": {"S": doomed}})["Item"]
    assert stored["status"] == {"S": "sent"} and stored["resends"] == {"N": "1"}


class AnswerLostSes(SesAdapter):
    """SES accepts the message for one address but the answer never arrives (a read timeout)."""

    def __init__(self, lost: str) -> None:
        super().__init__(client=boto3.client("sesv2", config=client_config()), pacer=Pacer(rate=0))
        self.lost = lost

    def send(self, request: dict[str, Any]) -> str:
        message_id = super().send(request)
        if request["Destination"]["ToAddresses"] == [self.lost]:
            raise OutcomeUnknown("Read timeout on endpoint URL", code="ReadTimeoutError")
        return message_id


def test_an_answer_lost_is_unknown_and_only_the_operator_resends_it(aws: Any, standin: SesStandin) -> None:
    lost = "sailor01@example.com"
    first = run(event(people(4)), ses=AnswerLostSes(lost))
    assert {r["email"]: r["status"] for r in first["records"]}[lost] == "unknown"
    for _ in range(2):
        retry = run(event(people(4)))
        assert retry["counts"]["unknown"] == 1 and retry["counts"]["sent"] == 0
    assert per_recipient(standin)[lost] == 1

    status = lambda_status()
    assert status["unknown_total"] == 1 and status["unknown"][0]["email"] == lost
    assert status["unknown"][0]["error_code"] == "ReadTimeoutError"

    run(event(people(4), resend_unknown=True))  # the operator's explicit choice: SES may now have it twice
    assert per_recipient(standin)[lost] == 2
    run(event(people(4), resend_unknown=True))  # ...but only once per choice: it is now sent
    assert per_recipient(standin)[lost] == 2
    assert lambda_status()["counts"]["sent"] == 4


def lambda_status() -> dict[str, Any]:
    from sender.status import blast_status

    return blast_status("regatta-2027", Settings(delivery_table=TABLE))


def test_retries_never_sleep_past_the_time_left_and_a_re_run_sends_it(
    aws: Any, standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.configure(fail_with=[{"recipient": "busy@example.com", "code": "TooManyRequestsException"}])
    monkeypatch.setattr("tenacity.wait.random.uniform", lambda low, high: high)  # the longest backoff each time
    started: list[float] = []

    def remaining_ms() -> int:  # 15.8 s left when the blast starts sending: 0.8 s above the send floor
        if not started:
            started.append(time.monotonic())
        return int(15_800 - (time.monotonic() - started[0]) * 1000)

    response = run(event([{"email": "busy@example.com"}]), remaining_ms=remaining_ms)
    elapsed = time.monotonic() - started[0]
    (record,) = response["records"]
    # Throttled until the floor: either the last retry was throttled or none could start in time.
    assert record["status"] == "failed" and record["error_code"] in ("TooManyRequestsException", "OutOfTime")
    # Backoffs of 0.25 and 0.5 s, then only what is left above the floor (0.05 s) instead of 1 s.
    assert record["attempts"] >= 3 and elapsed < 1.2
    stored = aws.get_item(TableName=TABLE, Key={"blast_id": {"S": "regatta-2027"}, "email": {"S": "busy@example.com"}})
    assert stored["Item"]["status"] == {"S": "failed"}  # not left `sending`: the next run may claim it

    standin.configure(fail_with=[])
    again = run(event([{"email": "busy@example.com"}]))
    assert again["records"][0]["status"] == "sent" and again["records"][0]["attempts"] == record["attempts"] + 1
    assert per_recipient(standin) == {"busy@example.com": 1}
