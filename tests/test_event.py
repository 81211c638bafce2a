"""Every bad event is refused with InvalidEvent naming the field; good ones parse."""

from __future__ import annotations

from typing import Any

import pytest

from sender.errors import InvalidEvent
from sender.handler import lambda_handler
from sender.models import parse_event
from tests.conftest import FakeContext

GOOD: dict[str, Any] = {
    "blast_id": "spring-regatta-2027",
    "template": "regatta-invite",
    "recipients": [{"email": "ann@example.com"}],
}


def test_minimal_event_parses_with_contract_defaults() -> None:
    event = parse_event(GOOD)
    assert event.action == "send"
    assert event.dry_run is False
    assert event.require_dkim is True
    assert event.globals == {} and event.tags == {}


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"blast_id": None}, "blast_id"),
        ({"blast_id": "-starts-with-dash"}, "blast_id"),
        ({"blast_id": "has space"}, "blast_id"),
        ({"blast_id": "x" * 129}, "blast_id"),
        ({"blast_id": 42}, "blast_id"),
        ({"template": None}, "template"),
        ({"template": "../etc/passwd"}, "template"),
        ({"template": "Upper"}, "template"),
        ({"recipients": None}, "recipients"),
        ({"recipients_uri": "s3://bucket/list.csv"}, "exactly one"),
        ({"recipients": "ann@example.com"}, "recipients"),
        ({"recipients": None, "recipients_uri": "https://example.com/list.csv"}, "recipients_uri"),
        ({"recipients": None, "recipients_uri": "s3://bucket/list.txt"}, "recipients_uri"),
        ({"globals": []}, "globals"),
        ({"tags": {"campaign": "has space"}}, "tags"),
        ({"tags": {"blast_id": "mine"}}, "tags"),
        ({"tags": {"n": 3}}, "tags"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"dry_run": 1}, "dry_run"),
        ({"require_dkim": "false"}, "require_dkim"),
        ({"action": "explode"}, "action"),
        ({"dryrun": True}, "dryrun"),
    ],
)
def test_bad_event_is_refused_naming_the_field(change: dict[str, Any], names: str) -> None:
    event = {**GOOD, **change}
    event = {k: v for k, v in event.items() if v is not None}
    with pytest.raises(InvalidEvent) as info:
        parse_event(event)
    assert names in info.value.message


@pytest.mark.parametrize("raw", [None, [], "send", 3])
def test_non_object_event_is_refused(raw: Any) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(raw)


def test_status_needs_only_blast_id_and_doctor_needs_nothing() -> None:
    assert parse_event({"action": "status", "blast_id": "b1"}).action == "status"
    assert parse_event({"action": "doctor"}).action == "doctor"
    with pytest.raises(InvalidEvent, match="blast_id"):
        parse_event({"action": "status"})


@pytest.mark.parametrize("raw", [{"action": "explode", "blast_id": "b"}, {"blast_id": "b"}, "nope", None])
def test_handler_answers_bad_events_with_refused_invalid_event_and_never_raises(raw: Any) -> None:
    response = lambda_handler(raw, FakeContext())
    assert response["status"] == "refused"
    assert response["error"]["code"] == "InvalidEvent"
    assert response["counts"]["sent"] == 0


def test_error_message_does_not_echo_values() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event({**GOOD, "blast_id": "secret value with spaces"})
    assert "secret value" not in info.value.message


@pytest.mark.parametrize(
    "raw", [{"Records": None}, {"Records": 5}, {"Records": "abc"}, {"Records": [{"body": "x"}]}, {"Records": []}]
)
def test_a_records_key_that_is_not_an_sqs_batch_is_refused_not_processed(raw: Any) -> None:
    response = lambda_handler(raw, FakeContext())
    assert response["status"] == "refused" and response["error"]["code"] == "InvalidEvent"


@pytest.mark.parametrize("bad", [{"a": 1}, "has space", 42])
def test_a_refusal_never_echoes_an_invalid_blast_id(bad: Any) -> None:
    response = lambda_handler({**GOOD, "blast_id": bad}, FakeContext())
    assert response["status"] == "refused" and response["blast_id"] is None
