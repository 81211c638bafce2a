"""The Lambda handler end to end: a moto server for Secrets Manager and the SES v2 stand-in, both on
127.0.0.1 and reached only through AWS_ENDPOINT_URL_* (no endpoint is hard-coded in the sender)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from sender.handler import lambda_handler
from tests.conftest import SECRET, FakeContext
from tests.standin.ses_server import SesStandin

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def standin() -> Iterator[SesStandin]:
    with SesStandin(max_send_rate=200) as ses:
        ses.add_identity("queenofsandiego.com")
        yield ses


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, moto_url: str, standin: SesStandin) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", standin.endpoint_url)
    name = f"jada/sender-{free_port()}"
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(SECRET))
    monkeypatch.setenv("SENDER_SECRET_ID", name)
    monkeypatch.setenv("SES_MANAGEMENT_RATE", "100")  # the real default paces lookups at 1/s
    return {"secret": name}


def blast(recipients: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "blast_id": "e2e-1",
        "template": "regatta-invite",
        "globals": {"regatta": "Spring", "event_date": "1 March", "boarding_time": "9:30", "dock": "C",
                    "boat": "Jada", "booking_url": "https://x.example", "contact_email": "b@example.com"},
        "recipients": recipients,
        **extra,
    }


def test_every_valid_unsuppressed_recipient_gets_exactly_one_message(env: dict[str, Any], standin: SesStandin) -> None:
    standin.suppress("bounced@example.com", "BOUNCE")
    recipients = [
        {"email": "ann@example.com", "name": "Ann"},
        {"email": "BOB@example.com", "name": "Bob"},
        {"email": "bob@example.com"},
        {"email": "bounced@example.com"},
        {"email": "not-an-address"},
        {"email": "chloe@example.org", "name": "Chloé", "vars": {"boat": "Queen"}},
    ]
    response = lambda_handler(blast(recipients), FakeContext())
    assert response["status"] == "complete", response
    stats = standin.stats()
    assert stats["per_recipient"] == {"ann@example.com": 1, "bob@example.com": 1, "chloe@example.org": 1}
    by_email = {r["email"].lower(): r for r in response["records"]}
    assert by_email["bounced@example.com"]["status"] == "suppressed"
    assert by_email["not-an-address"]["status"] == "invalid"
    # Records match what SES accepted: same message ids, same recipients.
    accepted = {m.addresses[0]: m.message_id for m in standin.accepted()}
    sent = {r["email"].lower(): r["message_id"] for r in response["records"] if r["status"] == "sent"}
    assert sent == accepted
    chloe = next(m for m in standin.accepted() if m.addresses == ("chloe@example.org",))
    msg = message_from_bytes(chloe.raw, policy=policy.default)
    assert "Queen" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert chloe.configuration_set == "jada-blasts"


def test_refusals_name_the_layer_and_send_nothing(env: dict[str, Any], standin: SesStandin) -> None:
    standin.add_identity("queenofsandiego.com", dkim_status="PENDING")
    response = lambda_handler(blast([{"email": "ann@example.com"}]), FakeContext())
    assert response["status"] == "refused" and response["error"]["code"] == "DkimNotVerified"
    assert standin.stats()["accepted"] == 0


def test_missing_secret_is_config_error(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDER_SECRET_ID", "jada/does-not-exist")
    response = lambda_handler(blast([{"email": "ann@example.com"}]), FakeContext())
    assert response["status"] == "refused" and response["error"]["code"] == "ConfigError"
    assert "jada/does-not-exist" in response["error"]["message"]


def test_no_secret_value_in_any_log_line_or_response(env: dict[str, Any], standin: SesStandin,
                                                     capfd: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    caplog.set_level("DEBUG")
    standin.configure(fail_with=[{"recipient": "rej@example.com", "code": "MessageRejected", "message": "no"}])
    responses = [
        lambda_handler(blast([{"email": "ann@example.com"}, {"email": "rej@example.com"}]), FakeContext()),
        lambda_handler({"blast_id": "x"}, FakeContext()),
        lambda_handler(blast([{"email": "ann@example.com"}], action="preflight"), FakeContext()),
    ]
    out = capfd.readouterr()
    everything = out.out + out.err + caplog.text + json.dumps(responses)
    for value in (SECRET["smtp_password"], SECRET["smtp_username"]):
        assert value not in everything
    assert "delivery record" in everything  # the logs were captured, so the check above means something
