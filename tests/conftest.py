"""Shared fixtures: no real AWS ever (fake credentials, caches cleared), fakes at the SES seam."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sender import config as config_module
from sender import suppression, wiring
from sender.config import parse_config
from sender.errors import SesError
from sender.render import Renderer

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_REGION": "us-west-2",
}


@pytest.fixture(autouse=True)
def _isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test runs with fake credentials and no profile, endpoint or ledger from the machine."""
    for name in list(__import__("os").environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "SENDER_", "DELIVERY_TABLE", "BLAST_QUEUE")):
            monkeypatch.delenv(name, raising=False)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    empty = tmp_path_factory.mktemp("awsconfig")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config_module.reset_cache()
    wiring.forget_adapters()
    suppression.forget_snapshots()
    Renderer.clear_cache()
    yield
    config_module.reset_cache()
    wiring.forget_adapters()
    suppression.forget_snapshots()


SECRET = {
    "from_address": "JADA Sailing <admin@queenofsandiego.com>",
    "reply_to": ["bookings@queenofsandiego.com"],
    "configuration_set": "jada-blasts",
    "smtp_username": "AKIAEXAMPLEUSERNAME1",
    "smtp_password": "SMTP-PASSWORD-VALUE-never-logged-0123456789",
}


@pytest.fixture
def secret() -> dict[str, Any]:
    return dict(SECRET)


@pytest.fixture
def sender_config() -> Any:
    return parse_config(json.dumps(SECRET))


def verified_identity(dkim: str = "SUCCESS", verified: bool = True, signing: bool = True) -> dict[str, Any]:
    return {
        "IdentityType": "DOMAIN",
        "VerifiedForSendingStatus": verified,
        "VerificationStatus": "SUCCESS" if verified else "PENDING",
        "DkimAttributes": {"SigningEnabled": signing, "Status": dkim, "Tokens": ["t1", "t2", "t3"]},
    }


def account(
    *, rate: float = 1000, max24: float = 50000, sent: float = 0, enabled: bool = True, production: bool = True
) -> dict[str, Any]:
    return {
        "SendQuota": {"Max24HourSend": max24, "MaxSendRate": rate, "SentLast24Hours": sent},
        "SendingEnabled": enabled,
        "ProductionAccessEnabled": production,
        "EnforcementStatus": "HEALTHY",
    }


@dataclass
class FakeSes:
    """An in-memory SES adapter: records every call; `errors[email]` scripts what sends raise, in order."""

    identities: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"queenofsandiego.com": verified_identity()}
    )
    account: dict[str, Any] = field(default_factory=account)
    suppressed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[SesError]] = field(default_factory=lambda: defaultdict(list))
    fail_all_after: tuple[int, SesError] | None = None
    region: str = "us-west-2"
    sent: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    send_calls: int = 0

    def get_email_identity(self, identity: str) -> dict[str, Any] | None:
        self.calls.append(f"GetEmailIdentity:{identity}")
        return self.identities.get(identity)

    def get_account(self) -> dict[str, Any]:
        self.calls.append("GetAccount")
        return self.account

    def get_suppressed_destination(self, email: str) -> dict[str, Any] | None:
        self.calls.append("GetSuppressedDestination")
        reason = self.suppressed.get(email.lower())
        return None if reason is None else {"EmailAddress": email, "Reason": reason}

    def iter_suppressed_destinations(self, *, start_date: Any = None, page_size: int = 1000) -> Iterator[dict]:
        items = sorted(self.suppressed.items())
        for start in range(0, max(1, len(items)), page_size):
            self.calls.append("ListSuppressedDestinations")
            for email, reason in items[start : start + page_size]:
                yield {"EmailAddress": email, "Reason": reason}

    def send(self, request: dict[str, Any]) -> str:
        self.send_calls += 1
        to = request["Destination"]["ToAddresses"][0]
        if self.fail_all_after is not None and len(self.sent) >= self.fail_all_after[0]:
            raise self.fail_all_after[1]
        scripted = self.errors.get(to)
        if scripted:
            raise scripted.pop(0)
        self.sent.append(request)
        return f"msg-{len(self.sent):04d}"

    def management_calls(self) -> int:
        return sum(1 for c in self.calls if not c.startswith("Send"))


@pytest.fixture
def fake_ses() -> FakeSes:
    return FakeSes()


@dataclass
class FakeContext:
    """A Lambda context: the time left is scripted."""

    remaining: int = 900_000
    function_name: str = "jada-blast-sender"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-west-2:123456789012:function:jada-blast-sender"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining
