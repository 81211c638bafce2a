"""Recipient lists streamed from S3 (moto): CSV and JSONL, bad lines, a missing email column, line ranges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ResponseStreamingError
from botocore.stub import Stubber
from moto import mock_aws

from sender.errors import ConfigError, InvalidEvent
from sender.models import BadRecipient, Recipient, parse_event
from sender.pipeline import Deps, run_blast
from sender.render import Renderer
from sender.s3lists import S3Source, parse_s3_uri
from sender.settings import PACKAGE_TEMPLATES
from sender.throttle import RateLimiter
from sender.wiring import open_recipients
from tests.conftest import FakeSes

BUCKET = "jada-lists"
GLOBALS = {"regatta": "R", "event_date": "d", "boarding_time": "t", "dock": "c", "boat": "Jada", "booking_url": "u",
           "contact_email": "c@example.com"}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


def put(s3: Any, key: str, body: str | bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def entries(source: S3Source) -> list[Recipient | BadRecipient]:
    return list(source.entries())


# --- CSV -------------------------------------------------------------------------------------------------
def test_csv_columns_become_email_name_and_vars_with_line_numbers(s3: Any) -> None:
    uri = put(s3, "spring.csv", "\ufeffEmail,Name,seats,boat\r\nann@example.com,Ann Lee,2,Jada\r\n"
                                "\r\nbob@Example.ORG, Bob ,,\r\n")
    got = entries(S3Source(uri, client=s3))
    assert got == [
        Recipient("ann@example.com", "Ann Lee", {"seats": "2", "boat": "Jada"}, position=2),
        Recipient("bob@example.org", "Bob", {}, position=4),  # empty cells are absent: globals apply
    ]


def test_csv_quoted_cells_keep_commas(s3: Any) -> None:
    uri = put(s3, "q.csv", 'email,name,dock\nann@example.com,"Lee, Ann","Harbor Island, C"\n')
    (entry,) = entries(S3Source(uri, client=s3))
    assert isinstance(entry, Recipient) and entry.name == "Lee, Ann" and entry.vars == {"dock": "Harbor Island, C"}


def test_a_malformed_csv_line_is_one_invalid_entry_naming_its_line(s3: Any) -> None:
    uri = put(s3, "bad.csv", 'email,name\nann@example.com,Ann\nbob@example.com,"Bob\ncara@example.com,Cara\n'
                             "dan@example.com,Dan,extra\nnot-an-address,Eve\n,NoAddress\n")
    got = entries(S3Source(uri, client=s3))
    bad = {e.position: e.reason for e in got if isinstance(e, BadRecipient)}
    good = [e.email for e in got if isinstance(e, Recipient)]
    assert good == ["ann@example.com", "cara@example.com"]  # the stray quote swallowed nothing after it
    assert set(bad) == {3, 5, 6, 7}
    assert bad[3].startswith("line 3: not valid CSV")
    assert bad[5] == "line 5: 3 cells but the header names 2 columns"
    assert bad[6].startswith("line 6: invalid address")
    assert bad[7] == "line 7: 'email' is missing"


def test_a_csv_without_an_email_column_is_refused_when_opened(s3: Any) -> None:
    uri = put(s3, "noemail.csv", "address,name\nann@example.com,Ann\n")
    with pytest.raises(InvalidEvent, match="no 'email' column"):
        S3Source(uri, client=s3)


@pytest.mark.parametrize(
    ("body", "message"),
    [("", "must start with a header row"), ("email,,name\n", "column 2 of the header row"),
     ("email,Email\n", "names column 'Email' twice")],
)
def test_a_bad_csv_header_is_refused(s3: Any, body: str, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        S3Source(put(s3, "h.csv", body), client=s3)


def test_a_missing_email_column_refuses_the_blast_before_anything_is_sent(
    s3: Any, fake_ses: FakeSes, sender_config: Any
) -> None:
    uri = put(s3, "noemail.csv", "mail,name\nann@example.com,Ann\n")
    deps = Deps(config=sender_config, renderer=Renderer(PACKAGE_TEMPLATES), open_recipients=open_recipients,
                ses=fake_ses, limiter=RateLimiter(100_000))  # type: ignore[arg-type]
    event = parse_event({"blast_id": "b", "template": "regatta-invite", "recipients_uri": uri, "globals": GLOBALS})
    with pytest.raises(InvalidEvent):
        run_blast(event, deps)
    assert fake_ses.send_calls == 0 and fake_ses.calls == []


def test_an_s3_csv_blast_sends_to_the_good_lines_and_reports_the_bad_ones(
    s3: Any, fake_ses: FakeSes, sender_config: Any
) -> None:
    uri = put(s3, "blast.csv", "email,name,seats\nann@example.com,Ann,2\nbroken\"line,x\nbob@example.com,Bob,\n")
    deps = Deps(config=sender_config, renderer=Renderer(PACKAGE_TEMPLATES), open_recipients=open_recipients,
                ses=fake_ses, limiter=RateLimiter(100_000))  # type: ignore[arg-type]
    event = parse_event({"blast_id": "b", "template": "regatta-invite", "recipients_uri": uri, "globals": GLOBALS})
    response = run_blast(event, deps)
    assert response["status"] == "complete"
    assert response["counts"]["sent"] == 2 and response["counts"]["invalid"] == 1
    (invalid,) = [r for r in response["records"] if r["status"] == "invalid"]
    assert invalid["reason"].startswith("line 3:")
    ann = next(r for r in fake_ses.sent if r["Destination"]["ToAddresses"] == ["ann@example.com"])
    assert b"holding 2 seats" in ann["Content"]["Raw"]["Data"]


# --- JSONL ---------------------------------------------------------------------------------------------------
def test_jsonl_one_object_a_line_blank_lines_skipped_bad_lines_named(s3: Any) -> None:
    lines = [json.dumps({"email": "ann@example.com", "name": "Ann", "vars": {"seats": 2}}), "",
             '{"email": "bob@example.com", ', json.dumps(["not", "an", "object"]),
             json.dumps({"email": "cara@example.com", "colour": "red"}), "   ",
             json.dumps({"email": "dan@example.com"})]
    got = entries(S3Source(put(s3, "l.jsonl", "\n".join(lines) + "\n"), client=s3))
    assert [(e.position, type(e).__name__) for e in got] == [
        (1, "Recipient"), (3, "BadRecipient"), (4, "BadRecipient"), (5, "BadRecipient"), (7, "Recipient")]
    assert got[0] == Recipient("ann@example.com", "Ann", {"seats": 2}, position=1)
    reasons = [e.reason for e in got if isinstance(e, BadRecipient)]
    assert reasons[0].startswith("line 3: not valid JSON")
    assert reasons[1] == "line 4: not an object"
    assert reasons[2] == "line 5: unknown field(s) colour"


def test_a_line_too_long_to_hold_is_one_invalid_entry(s3: Any) -> None:
    body = json.dumps({"email": "ann@example.com", "vars": {"x": "y" * 100_000}}) + "\n" + \
        json.dumps({"email": "bob@example.com"}) + "\n"
    got = entries(S3Source(put(s3, "long.jsonl", body), client=s3))
    assert isinstance(got[0], BadRecipient) and got[0].reason.startswith("line 1: longer than")
    assert got[1] == Recipient("bob@example.com", None, {}, position=2)


# --- ranges, streaming, errors ------------------------------------------------------------------------------
def test_a_line_range_yields_only_those_lines(s3: Any) -> None:
    uri = put(s3, "r.csv", "email\n" + "".join(f"u{i}@example.com\n" for i in range(2, 12)))
    got = entries(S3Source(uri, client=s3, start_line=4, end_line=6))
    assert [(e.position, e.email) for e in got] == [(4, "u4@example.com"), (5, "u5@example.com"),
                                                   (6, "u6@example.com")]


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [("a.csv", "email\nu1@example.com\n\nu2@example.com", (2, 4)), ("b.csv", "email\n", (2, 1)),
     ("c.jsonl", '{"email": "u1@example.com"}\r\n{"email": "u2@example.com"}\r\n', (1, 2))],
)
def test_line_range_names_the_lines_a_planner_can_split(s3: Any, key: str, body: str, expected: Any) -> None:
    assert S3Source(put(s3, key, body), client=s3).line_range() == expected


def test_chunks_by_line_range_cover_every_line_once(s3: Any) -> None:
    uri = put(s3, "all.jsonl", "".join(json.dumps({"email": f"u{i}@example.com"}) + "\n" for i in range(23)))
    first, last = S3Source(uri, client=s3).line_range()
    seen = [e.position for start in range(first, last + 1, 5)
            for e in S3Source(uri, client=s3, start_line=start, end_line=min(start + 4, last)).entries()]
    assert seen == list(range(1, 24))


class CountingClient:
    """Counts the bytes read from every object body the client returns."""

    def __init__(self, client: Any, fail_after: int | None = None) -> None:
        self._client = client
        self.bytes_read = 0
        self.gets: list[dict[str, Any]] = []
        self.fail_after = fail_after

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs)
        answer = self._client.get_object(**kwargs)
        body, outer = answer["Body"], self

        class Body:
            def read(self, n: int = -1) -> bytes:
                if outer.fail_after is not None and outer.bytes_read >= outer.fail_after:
                    outer.fail_after = None
                    raise ResponseStreamingError(error="connection reset by peer")
                data = body.read(n)
                outer.bytes_read += len(data)
                return bytes(data)

            def close(self) -> None:
                body.close()

        return {**answer, "Body": Body()}


def test_the_object_is_streamed_not_downloaded_whole(s3: Any) -> None:
    body = "email,name\n" + "".join(f"user{i}@example.com,User {i}\n" for i in range(50_000))
    client = CountingClient(s3)
    got = entries(S3Source(put(s3, "big.csv", body), client=client, end_line=101))
    assert len(got) == 100
    assert client.bytes_read < 200_000 < len(body)


def test_a_connection_lost_mid_file_resumes_where_it_stopped(s3: Any) -> None:
    body = "".join(json.dumps({"email": f"user{i}@example.com"}) + "\n" for i in range(5_000))
    client = CountingClient(s3, fail_after=70_000)
    got = entries(S3Source(put(s3, "resume.jsonl", body), client=client))
    assert [e.email for e in got] == [f"user{i}@example.com" for i in range(5_000)]
    resumed = client.gets[1]
    assert resumed["Range"].startswith("bytes=") and resumed["IfMatch"]


def test_a_missing_object_is_an_invalid_event(s3: Any) -> None:
    with pytest.raises(InvalidEvent, match=f"no object s3://{BUCKET}/nope.csv"):
        S3Source(f"s3://{BUCKET}/nope.csv", client=s3)
    with pytest.raises(InvalidEvent, match=r"bucket .* does not exist"):
        S3Source("s3://no-such-bucket-jada/x.jsonl", client=s3)


def test_access_denied_is_a_config_error_naming_the_permission() -> None:
    client = boto3.client("s3")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ConfigError, match="s3:GetObject"):
            S3Source(f"s3://{BUCKET}/secret.csv", client=client)


@pytest.mark.parametrize("uri", ["https://example.com/x.csv", "s3://bucket/list.txt", "/tmp/x.csv", "s3://B/x.csv"])
def test_only_s3_csv_or_jsonl_uris_are_accepted(uri: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_s3_uri(uri)
