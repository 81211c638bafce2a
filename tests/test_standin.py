"""The SES v2 stand-in answers a real botocore sesv2 client the way SES does."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.standin.ses_server import SesStandin, _Window, rolling_peak

pytestmark = [pytest.mark.integration, pytest.mark.allow_hosts(["127.0.0.1"])]

REPO = Path(__file__).resolve().parent.parent
SIMPLE = {"Simple": {"Subject": {"Data": "Ahoy"}, "Body": {"Text": {"Data": "See you on the water"}}}}


@pytest.fixture
def standin() -> Iterator[SesStandin]:
    with SesStandin() as server:
        yield server


@pytest.fixture
def ses(standin: SesStandin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A real sesv2 client reaching the stand-in through the standard config chain only."""
    for name, value in standin.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    # Config's "max_attempts" counts retries (1 = one retry after a backoff); "total_max_attempts"
    # counts calls, so 1 makes every throttle surface at once.
    return boto3.client("sesv2", config=Config(retries={"total_max_attempts": 1}))


def send_simple(ses: Any, to: str = "ann@example.com") -> dict[str, Any]:
    return ses.send_email(FromEmailAddress="admin@queenofsandiego.com",
                          Destination={"ToAddresses": [to]}, Content=SIMPLE)


def error_of(call: Any, *args: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return (response["Error"]["Code"], response["Error"]["Message"],
            response["ResponseMetadata"]["HTTPStatusCode"])


def control(standin: SesStandin, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(standin.endpoint_url + path, data=data,
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_simple_send_is_recorded_with_its_metadata(ses: Any, standin: SesStandin) -> None:
    first = ses.send_email(
        FromEmailAddress="JADA Sailing <admin@queenofsandiego.com>",
        Destination={"ToAddresses": ["Ann <Ann@Example.com>"], "CcAddresses": ["cc@example.com"],
                     "BccAddresses": ["bcc@example.com"]},
        ReplyToAddresses=["bookings@queenofsandiego.com"], ConfigurationSetName="jada-blasts",
        EmailTags=[{"Name": "blast_id", "Value": "spring"}], Content=SIMPLE)
    second = send_simple(ses)

    [message, _] = standin.accepted()
    assert first["MessageId"] and first["MessageId"] != second["MessageId"]
    assert message.message_id == first["MessageId"]
    assert message.kind == "Simple" and message.recipients == 3
    assert message.addresses == ("ann@example.com", "cc@example.com", "bcc@example.com")
    assert message.from_address == "JADA Sailing <admin@queenofsandiego.com>"
    assert message.reply_to == ("bookings@queenofsandiego.com",)
    assert message.configuration_set == "jada-blasts"
    assert message.email_tags == ({"Name": "blast_id", "Value": "spring"},)
    assert message.simple == SIMPLE["Simple"]
    assert message.wall > 1e9 and message.monotonic > 0


def test_raw_send_decodes_bytes_and_counts_header_recipients(ses: Any, standin: SesStandin) -> None:
    raw = (b"From: admin@queenofsandiego.com\r\nTo: Ann <ann@example.com>, bob@example.com\r\n"
           b"Cc: cc@example.com\r\nSubject: Ahoy\r\n\r\n\xe2\x9b\xb5 body\r\n")

    ses.send_email(Content={"Raw": {"Data": raw}})

    [message] = standin.accepted()
    assert message.kind == "Raw" and message.raw == raw
    assert message.recipients == 3 and message.destination is None
    assert message.from_address == "admin@queenofsandiego.com"
    assert control(standin, "/_standin/messages")["messages"][0]["raw"] == base64.b64encode(raw).decode()


def test_raw_send_with_destination_counts_the_destination(ses: Any, standin: SesStandin) -> None:
    raw = b"From: a@queenofsandiego.com\r\nTo: x@example.com, y@example.com\r\nSubject: s\r\n\r\nb"

    ses.send_email(FromEmailAddress="a@queenofsandiego.com", Destination={"ToAddresses": ["x@example.com"]},
                   Content={"Raw": {"Data": raw}})

    assert standin.accepted()[0].addresses == ("x@example.com",)


def test_get_account_reports_configured_quota(ses: Any, standin: SesStandin) -> None:
    standin.configure(max_send_rate=14, max_24_hour_send=200, sent_last_24_hours=10,
                      production_access_enabled=False, enforcement_status="PROBATION")
    send_simple(ses)

    account = ses.get_account()

    assert account["SendQuota"] == {"Max24HourSend": 200.0, "MaxSendRate": 14.0, "SentLast24Hours": 11.0}
    assert account["SendingEnabled"] is True
    assert account["ProductionAccessEnabled"] is False
    assert account["EnforcementStatus"] == "PROBATION"


def test_identity_is_served_and_unknown_identity_is_not_found(ses: Any, standin: SesStandin) -> None:
    standin.add_identity("queenofsandiego.com", dkim_status="PENDING", tokens=["t1", "t2", "t3"],
                         mail_from_domain="mail.queenofsandiego.com", mail_from_status="FAILED")

    identity = ses.get_email_identity(EmailIdentity="queenofsandiego.com")

    assert identity["IdentityType"] == "DOMAIN" and identity["VerifiedForSendingStatus"] is True
    assert identity["VerificationStatus"] == "SUCCESS"
    assert identity["DkimAttributes"] == {"SigningEnabled": True, "Status": "PENDING",
                                          "Tokens": ["t1", "t2", "t3"], "SigningAttributesOrigin": "AWS_SES"}
    assert identity["MailFromAttributes"] == {"MailFromDomain": "mail.queenofsandiego.com",
                                              "MailFromDomainStatus": "FAILED",
                                              "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"}
    missing = error_of(ses.get_email_identity, EmailIdentity="nobody@example.com")
    assert missing[::2] == ("NotFoundException", 404)


def test_suppressed_destination_put_get_and_absent(ses: Any, standin: SesStandin) -> None:
    ses.put_suppressed_destination(EmailAddress="gone@example.com", Reason="BOUNCE")

    found = ses.get_suppressed_destination(EmailAddress="gone@example.com")["SuppressedDestination"]

    assert found["EmailAddress"] == "gone@example.com" and found["Reason"] == "BOUNCE"
    assert abs(found["LastUpdateTime"].timestamp() - time.time()) < 5
    assert error_of(ses.get_suppressed_destination, EmailAddress="here@example.com")[::2] == (
        "NotFoundException", 404)


def test_suppression_list_paginates_and_filters_on_start_date(ses: Any, standin: SesStandin) -> None:
    for i in range(5):
        standin.suppress(f"new{i}@example.com", "BOUNCE", datetime(2026, 6, 1, tzinfo=UTC))
    standin.suppress("complaint@example.com", "COMPLAINT", datetime(2026, 6, 2, tzinfo=UTC))
    standin.suppress("old@example.com", "BOUNCE", datetime(2020, 1, 1, tzinfo=UTC))

    seen: list[str] = []
    token, pages = None, 0
    while True:
        kwargs: dict[str, Any] = {"NextToken": token} if token else {}
        page = ses.list_suppressed_destinations(StartDate=datetime(2026, 1, 1, tzinfo=UTC), PageSize=2,
                                                **kwargs)
        seen += [s["EmailAddress"] for s in page["SuppressedDestinationSummaries"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break

    assert pages == 3
    assert sorted(seen) == sorted([f"new{i}@example.com" for i in range(5)] + ["complaint@example.com"])
    complaints = ses.list_suppressed_destinations(Reasons=["COMPLAINT"])["SuppressedDestinationSummaries"]
    assert [s["EmailAddress"] for s in complaints] == ["complaint@example.com"]
    for bad in ("!!not-a-token", "YWJjZA=="):
        assert error_of(ses.list_suppressed_destinations, NextToken=bad)[0] == "InvalidNextTokenException"


def test_send_rate_over_the_limit_is_throttled_and_not_recorded(ses: Any, standin: SesStandin) -> None:
    standin.configure(max_send_rate=2)
    send_simple(ses, "a@example.com")
    send_simple(ses, "b@example.com")

    code, message, status = error_of(send_simple, ses, "c@example.com")

    assert (code, message, status) == ("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
    stats = standin.stats()
    assert stats["accepted"] == 2 and stats["throttled"] == 1 and stats["send_requests"] == 3
    assert "c@example.com" not in stats["per_recipient"]
    assert stats["peak_recipients_per_window"] == 2


def test_rate_window_frees_capacity_after_one_second() -> None:
    window = _Window()
    window.add(10.0, 3)
    window.add(10.5, 2)

    assert window.current(10.99) == 5
    assert window.current(11.0) == 2
    assert window.current(11.5) == 0


def test_pause_after_answers_sending_paused(ses: Any, standin: SesStandin) -> None:
    standin.configure(pause_after=2)
    send_simple(ses, "a@example.com")
    send_simple(ses, "b@example.com")

    assert error_of(send_simple, ses, "c@example.com") == (
        "SendingPausedException", "Sending is paused for this account.", 400)
    assert error_of(send_simple, ses, "d@example.com")[0] == "SendingPausedException"
    assert ses.get_account()["SendingEnabled"] is False
    assert standin.stats()["accepted"] == 2


def test_fail_with_rejects_matching_recipient_only_as_often_as_told(ses: Any, standin: SesStandin) -> None:
    standin.configure(fail_with=[{"recipient": "*@bounce.example", "times": 1}])

    assert error_of(send_simple, ses, "x@Bounce.example")[::2] == ("MessageRejected", 400)
    send_simple(ses, "x@bounce.example")
    send_simple(ses, "ok@example.com")
    assert standin.stats()["errors"] == {"MessageRejected": 1}


def test_error_rate_answers_internal_failure(ses: Any, standin: SesStandin) -> None:
    standin.configure(error_rate=1.0)

    assert error_of(send_simple, ses)[::2] == ("InternalFailure", 500)
    assert standin.accepted() == []


def test_management_rate_throttles_other_calls_but_not_sends(ses: Any, standin: SesStandin) -> None:
    standin.configure(management_rate=2)
    ses.get_account()
    ses.get_account()

    assert error_of(ses.get_account) == ("TooManyRequestsException", "Too Many Requests", 429)
    send_simple(ses)
    assert standin.stats()["management_throttled"] == 1


def test_latency_is_added_to_sends(ses: Any, standin: SesStandin) -> None:
    send_simple(ses)  # warm the connection
    standin.configure(latency_ms=60)

    started = time.perf_counter()
    send_simple(ses)

    assert time.perf_counter() - started >= 0.06


def test_per_recipient_counts_show_duplicates(ses: Any, standin: SesStandin) -> None:
    send_simple(ses, "Twice@example.com")
    send_simple(ses, "twice@example.com")
    send_simple(ses, "once@example.com")

    stats = standin.stats()
    assert stats["per_recipient"] == {"twice@example.com": 2, "once@example.com": 1}
    assert stats["duplicates"] == ["twice@example.com"]


def test_control_endpoints_configure_report_and_reset(ses: Any, standin: SesStandin) -> None:
    assert control(standin, "/_standin/config", {"pause_after": 1})["pause_after"] == 1
    send_simple(ses)
    assert error_of(send_simple, ses)[0] == "SendingPausedException"

    stats = control(standin, "/_standin/stats")
    messages = control(standin, "/_standin/messages?content=0")
    assert stats["accepted"] == 1 and stats["errors"] == {"SendingPausedException": 1}
    assert messages["count"] == 1 and "raw" not in messages["messages"][0]

    control(standin, "/_standin/reset", {})
    send_simple(ses)  # pause_after counts from the reset
    assert control(standin, "/_standin/stats")["accepted"] == 1
    with pytest.raises(urllib.error.HTTPError) as caught:
        control(standin, "/_standin/config", {"no_such_knob": 1})
    assert caught.value.code == 400


def test_rolling_peak_sums_counts_within_the_window() -> None:
    stamps = [1.6, 0.0, 0.5, 0.99, 1.0]
    counts = [5, 1, 2, 3, 4]

    assert rolling_peak(stamps, counts) == 12  # 0.99, 1.0, 1.6
    assert rolling_peak(stamps) == 3
    assert rolling_peak(stamps, counts, window=0.5) == 7  # 0.99, 1.0: 1.0 - 0.5 is not < 0.5
    assert rolling_peak([], []) == 0
    with pytest.raises(ValueError):
        rolling_peak([1.0], [1, 2])


def test_command_line_prints_ready_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standin.ses_server", "--port", "0", "--max-send-rate", "100",
         "--latency-ms", "80", "--identity", "queenofsandiego.com"],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        with urllib.request.urlopen(url + "/_standin/config", timeout=5) as response:
            config = json.loads(response.read())
        assert config["max_send_rate"] == 100 and config["latency_ms"] == 80
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
