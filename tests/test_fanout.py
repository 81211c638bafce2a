"""Fan-out: the planner splits a large blast into SQS chunks once; workers share the account's rate and
send every recipient exactly once, whatever is redelivered; a blast-fatal stop reaches every worker.

SQS and DynamoDB are moto (in process); SES is the stand-in on 127.0.0.1 through a real sesv2 client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sender.errors import AwsUnavailable, ConfigError
from sender.fanout import (
    FATAL_KEY,
    PLAN_KEY,
    FatalWatch,
    build_bodies,
    chunk_key,
    chunk_size_for,
    fleet_check,
    needs_fan_out,
    plan_chunks,
)
from sender.handler import lambda_handler
from sender.ledger import DynamoLedger, LedgerError
from sender.models import parse_event
from sender.queue import ChunkQueue, EnqueueFailed
from sender.settings import Settings
from tests.conftest import SECRET, FakeContext
from tests.standin.ses_server import SesStandin, rolling_peak
from tests.test_ledger import create_table

pytestmark = [pytest.mark.integration]

TABLE = "deliveries"
GLOBALS = {
    "regatta": "Spring",
    "event_date": "1 March",
    "boarding_time": "9:30",
    "dock": "C",
    "boat": "Jada",
    "booking_url": "https://x.example",
    "contact_email": "b@example.com",
}


def people(n: int) -> list[dict[str, Any]]:
    return [{"email": f"p{i:04d}@example.com", "name": f"P {i}"} for i in range(n)]


def send_event(n: int, blast_id: str = "big-1", **extra: Any) -> dict[str, Any]:
    return {"blast_id": blast_id, "template": "regatta-invite", "globals": GLOBALS, "recipients": people(n), **extra}


# --- planning, pure ---------------------------------------------------------------------------------------------
def test_chunks_cover_every_position_once_in_order() -> None:
    specs = plan_chunks(1, 1001, 500)
    assert [(s.first, s.last) for s in specs] == [(1, 500), (501, 1000), (1001, 1001)]
    assert [s.index for s in specs] == [0, 1, 2]


def test_fan_out_when_over_a_chunk_or_over_the_time_left() -> None:
    settings = Settings(chunk_size=500, time_margin_ms=30_000)
    assert needs_fan_out(settings, 501, rate=1000, remaining_ms=900_000)
    assert not needs_fan_out(settings, 500, rate=1000, remaining_ms=900_000)
    # 400 recipients at 1/s need 400 s; 5 minutes are left: fan out.
    assert needs_fan_out(settings, 400, rate=1, remaining_ms=300_000)


def test_inline_chunks_too_big_for_one_sqs_message_are_split_further() -> None:
    fat = [{"email": f"u{i}@example.com", "vars": {"note": "x" * 5_000}} for i in range(120)]
    event = parse_event({"blast_id": "b", "template": "regatta-invite", "recipients": fat})
    bodies = build_bodies(event, 1, 120, 500, rate=14, generation=1)
    assert len(bodies) > 1
    assert all(len(json.dumps(b)) < 256 * 1024 for b in bodies)
    positions = [p for b in bodies for p in range(b["first"], b["last"] + 1)]
    assert positions == list(range(1, 121))
    assert [r["email"] for b in bodies for r in b["event"]["recipients"]] == [r["email"] for r in fat]


# --- against moto + the stand-in --------------------------------------------------------------------------------
@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandin]:
    with SesStandin(max_send_rate=40, latency_ms=5) as ses:
        ses.add_identity("queenofsandiego.com")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", ses.endpoint_url)
        yield ses


@pytest.fixture
def aws(standin: SesStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        create_table(boto3.client("dynamodb"), TABLE)
        url = boto3.client("sqs").create_queue(QueueName="chunks")["QueueUrl"]
        boto3.client("secretsmanager").create_secret(Name="jada/sender", SecretString=json.dumps(SECRET))
        for key, value in {
            "SENDER_SECRET_ID": "jada/sender",
            "DELIVERY_TABLE": TABLE,
            "BLAST_QUEUE_URL": url,
            "CHUNK_SIZE": "30",
            "WORKER_CONCURRENCY": "3",
            "SES_MANAGEMENT_RATE": "100",
        }.items():
            monkeypatch.setenv(key, value)
        yield {"queue_url": url}


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message now on the queue, as Lambda's SQS event records (and deleted from the queue)."""
    sqs = boto3.client("sqs")
    records = []
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        messages = answer.get("Messages", [])
        if not messages:
            return records
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:chunks",
                    "awsRegion": "us-west-2",
                }
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def run_workers(records: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """Each record as its own SQS batch, `workers` at a time (the event source mapping's max concurrency)."""
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    pending = list(records)

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                record = pending.pop(0)
            answer = lambda_handler({"Records": [record]}, FakeContext())
            with lock:
                results.append(answer)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_planning_enqueues_each_chunk_once_even_when_the_plan_is_retried(
    aws: dict[str, Any], standin: SesStandin
) -> None:
    first = lambda_handler(send_event(100), FakeContext())
    assert first["status"] == "queued" and first["chunks"] == 4 and first["total"] == 100
    again = lambda_handler(send_event(100), FakeContext())
    assert again["status"] == "queued" and again["already_planned"] is True
    bodies = [json.loads(r["body"]) for r in drain(aws["queue_url"])]
    assert sorted(b["chunk"] for b in bodies) == [0, 1, 2, 3]
    assert [(b["first"], b["last"]) for b in sorted(bodies, key=lambda b: b["chunk"])] == [
        (1, 30),
        (31, 60),
        (61, 90),
        (91, 100),
    ]
    assert standin.stats()["accepted"] == 0  # the planner sends nothing itself
    plan = DynamoLedger(TABLE, ttl_days=1).get("big-1", PLAN_KEY)
    assert plan is not None and plan["state"] == "queued" and plan["total"] == 100


def test_small_blast_is_sent_by_the_planner_itself(aws: dict[str, Any], standin: SesStandin) -> None:
    response = lambda_handler(send_event(5), FakeContext())
    assert response["status"] == "complete" and response["counts"]["sent"] == 5
    assert drain(aws["queue_url"]) == []


def test_refused_blast_is_never_planned(aws: dict[str, Any], standin: SesStandin) -> None:
    standin.add_identity("queenofsandiego.com", dkim_status="PENDING")
    response = lambda_handler(send_event(100), FakeContext())
    assert response["status"] == "refused" and response["error"]["code"] == "DkimNotVerified"
    assert drain(aws["queue_url"]) == []


def test_workers_send_everyone_exactly_once_under_the_fleet_rate_and_redelivery_is_harmless(
    aws: dict[str, Any], standin: SesStandin
) -> None:
    lambda_handler(send_event(90), FakeContext())
    records = drain(aws["queue_url"])
    results = run_workers(records + records[:2], workers=3)  # two chunks delivered twice
    assert all(r == {"batchItemFailures": []} for r in results)
    stats = standin.stats()
    assert stats["distinct_recipients"] == 90 and stats["duplicates"] == []
    assert set(stats["per_recipient"].values()) == {1}
    assert stats["peak_recipients_per_window"] <= 40
    assert rolling_peak([m.monotonic for m in standin.accepted()]) <= 40
    ledger = DynamoLedger(TABLE, ttl_days=1)
    assert all(ledger.get("big-1", chunk_key(1, i))["state"] == "done" for i in range(3))
    status = lambda_handler({"action": "status", "blast_id": "big-1"}, FakeContext())
    assert status["counts"]["sent"] == 90
    assert status["chunks"] == {"done": 3, "stopped": 0, "total": 3, "plan": "queued", "generation": 1}
    assert status["status"] == "complete"


def test_status_shows_chunks_done_of_total_while_workers_run(aws: dict[str, Any], standin: SesStandin) -> None:
    lambda_handler(send_event(90), FakeContext())
    records = drain(aws["queue_url"])
    run_workers(records[:1], workers=1)
    status = lambda_handler({"action": "status", "blast_id": "big-1"}, FakeContext())
    assert status["chunks"]["done"] == 1 and status["chunks"]["total"] == 3
    assert status["status"] == "in_progress" and status["counts"]["sent"] == 30


def test_a_bad_chunk_is_a_partial_batch_failure_not_the_whole_batch(aws: dict[str, Any], standin: SesStandin) -> None:
    lambda_handler(send_event(40), FakeContext())
    records = drain(aws["queue_url"])
    broken = dict(records[0], messageId="broken-1", body="{not json")
    answer = lambda_handler({"Records": [broken, *records]}, FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "broken-1"}]}
    assert standin.stats()["distinct_recipients"] == 40


def test_a_chunk_that_runs_out_of_time_is_failed_for_redelivery_and_then_finishes(
    aws: dict[str, Any], standin: SesStandin
) -> None:
    lambda_handler(send_event(40), FakeContext())
    records = drain(aws["queue_url"])
    first = records[0]
    answer = lambda_handler({"Records": [first]}, FakeContext(remaining=29_000))  # under the 30 s margin
    assert answer == {"batchItemFailures": [{"itemIdentifier": first["messageId"]}]}
    answer = lambda_handler({"Records": [first]}, FakeContext())
    assert answer == {"batchItemFailures": []}
    assert standin.stats()["distinct_recipients"] == 30 and standin.stats()["duplicates"] == []


def test_sending_paused_mid_blast_stops_every_worker(aws: dict[str, Any], standin: SesStandin) -> None:
    lambda_handler(send_event(150), FakeContext())
    records = drain(aws["queue_url"])
    standin.configure(pause_after=20)
    run_workers(records, workers=3)
    stats = standin.stats()
    assert stats["accepted"] == 20
    refused = stats["errors"].get("SendingPausedException", 0)
    # Each worker stops at its first paused answer or at its next look at #fatal (once a second): the calls
    # after the pause are bounded by the workers' calls in flight plus a second of their share of the rate.
    assert refused <= 3 * (2 * 4 + 14)
    fatal = DynamoLedger(TABLE, ttl_days=1).get("big-1", FATAL_KEY)
    assert fatal is not None and fatal["error_code"] == "SendingPausedException" and fatal["generation"] == 1
    assert 150 - 20 - refused > 60  # most of the list was never attempted


def test_a_worker_that_cannot_start_fails_every_message_back_to_the_queue(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_handler(send_event(40), FakeContext())
    records = drain(aws["queue_url"])
    monkeypatch.delenv("DELIVERY_TABLE")  # misconfigured: a worker without its ledger must not send
    answer = lambda_handler({"Records": records}, FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}


def test_an_s3_list_is_planned_as_line_ranges_and_sent_once(aws: dict[str, Any], standin: SesStandin) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lists", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    rows = "".join(f"p{i:04d}@example.com,P {i},Jada\n" for i in range(70))
    s3.put_object(Bucket="lists", Key="spring.csv", Body=("email,name,boat\n" + rows).encode())
    event = {
        "blast_id": "s3-big",
        "template": "regatta-invite",
        "globals": GLOBALS,
        "recipients_uri": "s3://lists/spring.csv",
    }
    queued = lambda_handler(event, FakeContext())
    assert queued["status"] == "queued" and queued["total"] == 70 and queued["chunks"] == 3
    records = drain(aws["queue_url"])
    bodies = sorted((json.loads(r["body"]) for r in records), key=lambda b: b["chunk"])
    assert [(b["first"], b["last"]) for b in bodies] == [(2, 31), (32, 61), (62, 71)]  # line 1 is the header
    assert all("recipients" not in b["event"] for b in bodies)
    run_workers(records, workers=3)
    stats = standin.stats()
    assert stats["distinct_recipients"] == 70 and stats["duplicates"] == []


def test_planning_refuses_a_list_longer_than_the_quota_left(aws: dict[str, Any], standin: SesStandin) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lists", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(
        Bucket="lists",
        Key="l.jsonl",
        Body="".join(json.dumps({"email": f"u{i}@example.com"}) + "\n" for i in range(50)).encode(),
    )
    standin.configure(max_24_hour_send=40)
    event = {"blast_id": "q", "template": "regatta-invite", "globals": GLOBALS, "recipients_uri": "s3://lists/l.jsonl"}
    response = lambda_handler(event, FakeContext())
    assert response["status"] == "refused" and response["error"]["code"] == "QuotaExceeded"
    assert drain(aws["queue_url"]) == []


# --- review findings: a chunk is never deleted unsent; plans have generations --------------------------------
def status_of(blast_id: str = "big-1") -> dict[str, Any]:
    return lambda_handler({"action": "status", "blast_id": blast_id}, FakeContext())


def test_fleet_rate_is_shared_by_whole_sends_per_worker() -> None:
    assert fleet_check(40, 4) == []
    (warning,) = fleet_check(14, 4)
    assert "held to 3 sends a second" in warning and "12/s" in warning
    with pytest.raises(ConfigError) as refused:
        fleet_check(2, 3)
    assert "WORKER_CONCURRENCY is 3" in refused.value.message and "at most 2" in refused.value.message


def test_a_chunk_fits_in_one_invocation_at_the_workers_rate() -> None:
    settings = Settings(chunk_size=500, worker_concurrency=4, time_margin_ms=30_000)
    assert chunk_size_for(settings, 14, None) == 500
    assert chunk_size_for(settings, 14, 900_000) == 500
    # 100 s left, 30 s margin: 70 s at 3/s (floor of 14/4), 80% of it.
    assert chunk_size_for(settings, 14, 100_000) == 168
    assert chunk_size_for(settings, 14, 10_000) == 1


def test_a_stop_of_an_earlier_generation_no_longer_applies(aws: dict[str, Any]) -> None:
    ledger = DynamoLedger(TABLE, ttl_days=1)
    FatalWatch(ledger, "b", 1).trip("SendingPausedException", "paused")
    assert FatalWatch(ledger, "b", 1).check() == ("SendingPausedException", "paused")
    assert FatalWatch(ledger, "b", 2).check() is None
    FatalWatch(ledger, "b", 2).trip("LedgerUnavailable", "a blip")  # not blast-fatal: never shared
    assert ledger.get("b", FATAL_KEY)["generation"] == 1
    FatalWatch(ledger, "b", 2).trip("AccountSuspendedException", "suspended")
    assert FatalWatch(ledger, "b", 2).check() == ("AccountSuspendedException", "suspended")


def test_a_stopped_blast_is_finished_by_invoking_it_again_once_fixed(aws: dict[str, Any], standin: SesStandin) -> None:
    standin.configure(max_send_rate=300)  # fast: these tests are about what is sent, not the pace
    lambda_handler(send_event(90), FakeContext())
    standin.configure(pause_after=10)
    results = run_workers(drain(aws["queue_url"]), workers=3)
    assert all(r == {"batchItemFailures": []} for r in results)  # stopped on purpose: not redelivered
    ledger = DynamoLedger(TABLE, ttl_days=1)
    assert {ledger.get("big-1", chunk_key(1, i))["state"] for i in range(3)} == {"stopped"}
    status = status_of()
    assert status["status"] == "stopped" and status["error"]["code"] == "SendingPausedException"
    assert status["chunks"]["stopped"] == 3 and "invoke the same event again" in status["notes"][0]

    standin.configure(pause_after=None)  # the operator fixed the account
    again = lambda_handler(send_event(90), FakeContext())
    assert again["status"] == "queued" and again["already_planned"] is False and again["generation"] == 2
    assert all(r == {"batchItemFailures": []} for r in run_workers(drain(aws["queue_url"]), workers=3))
    stats = standin.stats()
    assert stats["distinct_recipients"] == 90 and stats["duplicates"] == []
    status = status_of()
    assert status["status"] == "complete" and status["counts"]["sent"] == 90 and "error" not in status
    assert status["chunks"]["done"] == 3 and status["chunks"]["generation"] == 2


def test_a_ledger_blip_fails_only_that_chunk_back_to_the_queue(
    aws: dict[str, Any], standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.configure(max_send_rate=300)  # fast: these tests are about what is sent, not the pace
    lambda_handler(send_event(90), FakeContext())
    records = drain(aws["queue_url"])
    real = DynamoLedger.claim
    blipped: list[str] = []

    def claim(self: DynamoLedger, blast_id: str, key: str, **kw: Any) -> Any:
        if key == "p0003@example.com" and not blipped:
            blipped.append(key)
            raise LedgerError("the delivery table 'deliveries' kept throttling while claiming a recipient")
        return real(self, blast_id, key, **kw)

    monkeypatch.setattr(DynamoLedger, "claim", claim)
    first = next(r for r in records if json.loads(r["body"])["chunk"] == 0)
    answers = run_workers(records, workers=3)
    assert sorted(f["itemIdentifier"] for a in answers for f in a["batchItemFailures"]) == [first["messageId"]]
    ledger = DynamoLedger(TABLE, ttl_days=1)
    assert ledger.get("big-1", FATAL_KEY) is None  # the other workers never stopped
    assert ledger.get("big-1", chunk_key(1, 0)) is None
    assert status_of()["status"] == "in_progress"
    assert run_workers([first], workers=1) == [{"batchItemFailures": []}]  # SQS delivers it again
    stats = standin.stats()
    assert stats["distinct_recipients"] == 90 and stats["duplicates"] == []
    assert status_of()["status"] == "complete"


def test_a_list_that_breaks_mid_chunk_is_redelivered_not_deleted(
    aws: dict[str, Any], standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.configure(max_send_rate=300)  # fast: these tests are about what is sent, not the pace
    from sender import recipients

    lambda_handler(send_event(60), FakeContext())
    records = drain(aws["queue_url"])
    real = recipients.InlineSource.entries
    broke: list[int] = []

    def entries(self: Any) -> Any:
        for i, entry in enumerate(real(self)):
            if i == 5 and not broke:
                broke.append(1)
                raise AwsUnavailable("recipients_uri: S3 could not be reached (ReadTimeoutError)")
            yield entry

    monkeypatch.setattr(recipients.InlineSource, "entries", entries)
    answers = run_workers(records[:1], workers=1)
    assert answers == [{"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}]
    run_workers(records, workers=2)
    stats = standin.stats()
    assert stats["distinct_recipients"] == 60 and stats["duplicates"] == []
    assert status_of()["status"] == "complete"


def test_failed_recipients_are_retried_by_invoking_a_finished_blast_again(
    aws: dict[str, Any], standin: SesStandin
) -> None:
    standin.configure(max_send_rate=300)  # fast: these tests are about what is sent, not the pace
    standin.configure(fail_with=[{"recipient": "p0005@example.com", "code": "MessageRejected", "times": 1}])
    lambda_handler(send_event(90), FakeContext())
    records = drain(aws["queue_url"])
    run_workers(records[:2], workers=2)
    assert lambda_handler(send_event(90), FakeContext())["already_planned"] is True  # a chunk is outstanding
    run_workers(records[2:], workers=1)
    assert status_of()["counts"]["failed"] == 1
    again = lambda_handler(send_event(90), FakeContext())
    assert again["already_planned"] is False and again["generation"] == 2
    run_workers(drain(aws["queue_url"]), workers=3)
    stats = standin.stats()
    assert stats["per_recipient"]["p0005@example.com"] == 1 and stats["duplicates"] == []
    status = status_of()
    assert status["status"] == "complete" and status["counts"]["sent"] == 90 and status["counts"]["failed"] == 0


def test_a_plan_write_whose_answer_was_lost_is_still_enqueued(
    aws: dict[str, Any], standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = DynamoLedger.put_meta

    def put_meta(self: DynamoLedger, blast_id: str, key: str, values: dict[str, Any], **kw: Any) -> bool:
        if key == PLAN_KEY and values.get("state") == "planning":
            real_put(self, blast_id, key, values, **kw)  # the write lands, its answer is lost...
        return real_put(self, blast_id, key, values, **kw)  # ...and the client's retry meets it

    monkeypatch.setattr(DynamoLedger, "put_meta", put_meta)
    first = lambda_handler(send_event(90), FakeContext())
    assert first["status"] == "queued" and first["already_planned"] is False
    assert len(drain(aws["queue_url"])) == 3


def test_an_enqueue_that_breaks_off_is_partial_and_the_next_invocation_finishes_it(
    aws: dict[str, Any], standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.configure(max_send_rate=300)  # fast: these tests are about what is sent, not the pace
    real = ChunkQueue.send

    def send(self: ChunkQueue, bodies: list[dict[str, Any]]) -> int:
        real(self, bodies[:1])
        raise EnqueueFailed("2 chunk message(s) could not be enqueued", sent=1)

    monkeypatch.setattr(ChunkQueue, "send", send)
    first = lambda_handler(send_event(90), FakeContext())
    assert first["status"] == "partial" and first["error"]["code"] == "AwsError"
    assert first["chunks_queued"] == 1 and first["chunks"] == 3 and "invoke the same event again" in first["continue"]
    assert DynamoLedger(TABLE, ttl_days=1).get("big-1", PLAN_KEY)["state"] == "interrupted"
    live = drain(aws["queue_url"])
    run_workers(live, workers=1)
    assert status_of()["status"] == "partial"

    monkeypatch.setattr(ChunkQueue, "send", real)
    again = lambda_handler(send_event(90), FakeContext())
    assert again["status"] == "queued" and again["already_planned"] is False and again["generation"] == 1
    run_workers(drain(aws["queue_url"]), workers=3)  # every chunk again: the first one is skipped by the ledger
    stats = standin.stats()
    assert stats["distinct_recipients"] == 90 and stats["duplicates"] == []
    assert status_of()["status"] == "complete"


def test_max_send_rate_caps_the_fleet_not_each_worker(
    aws: dict[str, Any], standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_SEND_RATE", "6")
    monkeypatch.setenv("CHUNK_SIZE", "8")
    lambda_handler(send_event(24), FakeContext())
    records = drain(aws["queue_url"])
    assert {json.loads(r["body"])["rate"] for r in records} == {6}
    run_workers(records, workers=3)
    stamps = [m.monotonic for m in standin.accepted()]
    assert len(stamps) == 24 and rolling_peak(stamps) <= 6


def test_more_workers_than_the_rate_allows_is_refused(
    aws: dict[str, Any], standin: SesStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.configure(max_send_rate=2)
    response = lambda_handler(send_event(40), FakeContext())
    assert response["status"] == "refused" and response["error"]["code"] == "ConfigError"
    assert "worker_concurrency" in response["error"]["message"]
    assert drain(aws["queue_url"]) == []


def test_a_finished_blast_with_duplicates_and_blank_entries_is_complete(
    aws: dict[str, Any], standin: SesStandin
) -> None:
    listed = people(40)
    listed[10] = dict(listed[3])  # listed twice: never stored
    listed[20] = {"email": ""}  # no address: never stored
    lambda_handler({**send_event(40), "recipients": listed}, FakeContext())
    run_workers(drain(aws["queue_url"]), workers=2)
    status = status_of()
    assert status["status"] == "complete" and status["recipients"] < status["total"] == 40


def test_an_s3_blast_invoked_again_is_not_refused_for_the_quota_its_own_sends_used(
    aws: dict[str, Any], standin: SesStandin
) -> None:
    standin.configure(max_send_rate=300)  # fast: these tests are about what is sent, not the pace
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lists", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    rows = "".join(json.dumps({"email": f"u{i}@example.com"}) + "\n" for i in range(40))
    s3.put_object(Bucket="lists", Key="l.jsonl", Body=rows.encode())
    event = {"blast_id": "q2", "template": "regatta-invite", "globals": GLOBALS, "recipients_uri": "s3://lists/l.jsonl"}
    assert lambda_handler(event, FakeContext())["status"] == "queued"
    run_workers(drain(aws["queue_url"]), workers=2)
    standin.configure(max_24_hour_send=50)  # 40 of 50 used by this blast itself
    again = lambda_handler(event, FakeContext())
    assert again["status"] == "queued" and again["generation"] == 2
    assert any("skips those already sent" in w for w in again["warnings"])
    run_workers(drain(aws["queue_url"]), workers=2)
    assert standin.stats()["duplicates"] == [] and standin.stats()["accepted"] == 40
