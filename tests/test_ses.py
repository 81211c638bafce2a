"""The SES adapter at its seam: botocore Stubber for the calls moto lacks, and error classification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from tenacity import wait_none

from sender.errors import BlastFatal, MessageRejected, OutcomeUnknown, Throttled, TransientSesError
from sender.ses import SesAdapter, classify, client_config, send_request
from sender.throttle import Pacer


def stubbed() -> tuple[SesAdapter, Stubber]:
    client = boto3.client("sesv2", region_name="us-west-2", config=client_config())
    stub = Stubber(client)
    stub.activate()
    return SesAdapter(client, pacer=Pacer(rate=0), management_wait=wait_none()), stub


def client_error(stub: Stubber, method: str, code: str, status: int, message: str = "m", **params: Any) -> None:
    stub.add_client_error(
        method,
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        expected_params=params or None,
    )


def test_send_request_is_a_pure_dict_naming_the_one_recipient() -> None:
    request = send_request(
        from_address="A <a@example.com>",
        to_address="b@example.com",
        raw_message=b"raw",
        configuration_set="set",
        tags={"blast_id": "b1"},
    )
    assert request == {
        "FromEmailAddress": "A <a@example.com>",
        "Destination": {"ToAddresses": ["b@example.com"]},
        "Content": {"Raw": {"Data": b"raw"}},
        "ConfigurationSetName": "set",
        "EmailTags": [{"Name": "blast_id", "Value": "b1"}],
    }
    assert "ConfigurationSetName" not in send_request(
        from_address="a@example.com", to_address="b@example.com", raw_message=b"", configuration_set=None, tags={}
    )


def test_botocore_retries_are_off_so_tenacity_alone_retries() -> None:
    assert client_config().retries == {"mode": "standard", "total_max_attempts": 1}


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("TooManyRequestsException", 429, "Maximum sending rate exceeded.", Throttled),
        ("Throttling", 400, "Maximum sending rate exceeded.", Throttled),
        ("LimitExceededException", 400, "slow down", Throttled),
        ("TooManyRequestsException", 429, "Daily message quota exceeded.", BlastFatal),
        ("SendingPausedException", 400, "paused", BlastFatal),
        ("AccountSuspendedException", 400, "suspended", BlastFatal),
        ("MailFromDomainNotVerifiedException", 400, "mail from", BlastFatal),
        ("AccessDeniedException", 403, "denied", BlastFatal),
        ("MessageRejected", 400, "Email address is not verified.", MessageRejected),
        ("BadRequestException", 400, "bad", MessageRejected),
        ("InternalFailure", 500, "oops", OutcomeUnknown),  # may have been accepted: never retried
        ("InternalServerError", 502, "gateway", OutcomeUnknown),
        ("ServiceUnavailable", 503, "later", TransientSesError),
    ],
)
def test_send_errors_are_classified(code: str, status: int, message: str, expected: type) -> None:
    ses, stub = stubbed()
    client_error(stub, "send_email", code, status, message)
    with pytest.raises(expected) as info:
        ses.send(
            send_request(
                from_address="a@example.com",
                to_address="b@example.com",
                raw_message=b"x",
                configuration_set=None,
                tags={},
            )
        )
    if expected is not BlastFatal or "Daily" not in message:
        assert info.value.code == code


def test_connection_errors_before_sending_are_retryable_but_no_answer_is_unknown() -> None:
    assert isinstance(classify(EndpointConnectionError(endpoint_url="x"), idempotent=False), TransientSesError)
    assert isinstance(classify(ConnectTimeoutError(endpoint_url="x"), idempotent=False), TransientSesError)
    assert isinstance(classify(ReadTimeoutError(endpoint_url="x"), idempotent=False), OutcomeUnknown)
    assert isinstance(classify(ReadTimeoutError(endpoint_url="x"), idempotent=True), TransientSesError)


def test_a_5xx_on_a_management_call_is_retried() -> None:
    ses, stub = stubbed()
    client_error(stub, "get_account", "InternalFailure", 500)
    stub.add_response("get_account", {"SendingEnabled": True})
    assert ses.get_account()["SendingEnabled"] is True


def test_missing_credentials_or_region_are_fatal_not_retried() -> None:
    assert isinstance(classify(NoCredentialsError(), idempotent=True), BlastFatal)
    assert isinstance(classify(NoRegionError(), idempotent=False), BlastFatal)


def test_send_returns_the_message_id() -> None:
    ses, stub = stubbed()
    stub.add_response("send_email", {"MessageId": "0100-abc"})
    assert (
        ses.send(
            send_request(
                from_address="a@example.com",
                to_address="b@example.com",
                raw_message=b"x",
                configuration_set=None,
                tags={},
            )
        )
        == "0100-abc"
    )


def test_management_calls_give_up_after_their_attempts() -> None:
    ses, stub = stubbed()
    for _ in range(6):
        client_error(stub, "get_account", "TooManyRequestsException", 429)
    with pytest.raises(Throttled):
        ses.get_account()
    stub.assert_no_pending_responses()


def test_management_calls_retry_429_then_answer() -> None:
    ses, stub = stubbed()
    client_error(stub, "get_suppressed_destination", "TooManyRequestsException", 429, EmailAddress="a@example.com")
    client_error(stub, "get_suppressed_destination", "TooManyRequestsException", 429, EmailAddress="a@example.com")
    stub.add_response(
        "get_suppressed_destination",
        {
            "SuppressedDestination": {
                "EmailAddress": "a@example.com",
                "Reason": "BOUNCE",
                "LastUpdateTime": datetime(2026, 1, 2, tzinfo=UTC),
            }
        },
        {"EmailAddress": "a@example.com"},
    )
    entry = ses.get_suppressed_destination("a@example.com")
    assert entry is not None and entry["Reason"] == "BOUNCE"
    stub.assert_no_pending_responses()


def test_not_found_means_not_suppressed_and_unknown_identity() -> None:
    ses, stub = stubbed()
    client_error(stub, "get_suppressed_destination", "NotFoundException", 404)
    client_error(stub, "get_email_identity", "NotFoundException", 404)
    assert ses.get_suppressed_destination("a@example.com") is None
    assert ses.get_email_identity("example.com") is None


def test_listing_loops_on_next_token_with_the_largest_page() -> None:
    ses, stub = stubbed()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    page = [{"EmailAddress": f"u{i}@example.com", "Reason": "BOUNCE", "LastUpdateTime": start} for i in range(3)]
    stub.add_response(
        "list_suppressed_destinations",
        {"SuppressedDestinationSummaries": page[:2], "NextToken": "t1"},
        {"PageSize": 1000, "StartDate": start},
    )
    stub.add_response(
        "list_suppressed_destinations",
        {"SuppressedDestinationSummaries": page[2:]},
        {"PageSize": 1000, "StartDate": start, "NextToken": "t1"},
    )
    assert [e["EmailAddress"] for e in ses.iter_suppressed_destinations(start_date=start)] == [
        "u0@example.com",
        "u1@example.com",
        "u2@example.com",
    ]
    stub.assert_no_pending_responses()


def test_management_calls_are_paced() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(rate=1.0, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert now[0] == pytest.approx(3.0)  # two from the burst, then one a second
