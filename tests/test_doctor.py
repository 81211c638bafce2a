"""`blast doctor`: each check's PASS / WARN / FAIL with fakes (SES, secret store, resolver, SMTP probe), the
JSON shape, the text table, the cost of counting the suppression list, and the issue's "done when": the
command against the SES stand-in reports an unverified identity, pending DKIM and a suppressed recipient as
exactly three FAILs with their fixes."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console

from sender import cli, doctor, handler
from sender.config import parse_config
from sender.doctor import Check, DoctorReport, Level, SmtpOptions, run_doctor
from sender.errors import BlastFatal, ConfigError, SesError, TransientSesError
from sender.smtp import ProbeResult, derive_smtp_password
from tests.standin.ses_server import SesStandin
from tests.test_dnscheck import FakeResolver, PassingResolver
from tests.test_smtp import Tls, _serve, make_tls

NOW = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
DOMAIN = "queenofsandiego.com"
IAM_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STORED_PASSWORD = derive_smtp_password(IAM_KEY, "us-west-2")
SECRET: dict[str, Any] = {
    "from_address": "JADA Sailing <admin@queenofsandiego.com>",
    "reply_to": ["bookings@queenofsandiego.com"],
    "configuration_set": "jada-blasts",
    "ses_region": "us-west-2",
    "smtp_username": "AKIAEXAMPLEUSERNAME1",
    "smtp_password": STORED_PASSWORD,
}


def identity(
    *,
    verified: bool = True,
    dkim: str = "SUCCESS",
    signing: bool = True,
    mail_from: str | None = "mail.queenofsandiego.com",
    mail_from_status: str = "SUCCESS",
    behavior: str = "USE_DEFAULT_VALUE",
    kind: str = "DOMAIN",
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "IdentityType": kind,
        "VerifiedForSendingStatus": verified,
        "VerificationStatus": "SUCCESS" if verified else "PENDING",
        "DkimAttributes": {
            "SigningEnabled": signing,
            "Status": dkim,
            "Tokens": ["tokaaa", "tokbbb", "tokccc"],
            "SigningAttributesOrigin": "AWS_SES",
        },
    }
    if mail_from:
        answer["MailFromAttributes"] = {
            "MailFromDomain": mail_from,
            "MailFromDomainStatus": mail_from_status,
            "BehaviorOnMxFailure": behavior,
        }
    return answer


def account(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "SendingEnabled": True,
        "EnforcementStatus": "HEALTHY",
        "ProductionAccessEnabled": True,
        "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 1200.0},
        "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
    }
    answer.update(overrides)
    return answer


@dataclass
class FakeSes:
    """The SesAdapter methods the doctor calls, in memory. `fail[method]` raises on that method."""

    identities: dict[str, dict[str, Any]] = field(default_factory=lambda: {DOMAIN: identity()})
    account: dict[str, Any] = field(default_factory=account)
    suppressed: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, SesError] = field(default_factory=dict)
    region: str = "us-west-2"
    calls: list[str] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def get_email_identity(self, name: str) -> dict[str, Any] | None:
        self._call("get_email_identity")
        found = self.identities.get(name)
        return copy.deepcopy(found) if found is not None else None

    def get_account(self) -> dict[str, Any]:
        self._call("get_account")
        return copy.deepcopy(self.account)

    def get_suppressed_destination(self, email: str) -> dict[str, Any] | None:
        self._call("get_suppressed_destination")
        return copy.deepcopy(self.suppressed.get(email.lower()))

    def iter_suppressed_destinations(self, *, start_date: Any = None, page_size: int = 1000) -> Iterator[Any]:
        rows = sorted(self.suppressed.values(), key=lambda r: r["EmailAddress"])
        for start in range(0, max(1, len(rows)), page_size):
            self._call("list_suppressed_destinations")
            yield from rows[start : start + page_size]

    def suppress(self, email: str, reason: str = "BOUNCE", days_ago: int = 3) -> None:
        self.suppressed[email.lower()] = {
            "EmailAddress": email,
            "Reason": reason,
            "LastUpdateTime": NOW - timedelta(days=days_ago),
            "Attributes": {"MessageId": "0100018f-msg"},
        }


@dataclass
class FakeStore:
    """SecretStore's load/describe. `error` makes load raise; `changed_days_ago` dates the last change."""

    secret: dict[str, Any] = field(default_factory=lambda: dict(SECRET))
    error: ConfigError | None = None
    changed_days_ago: int = 10
    describe_error: Exception | None = None

    def load(self, secret_id: str | None, *, force: bool = False) -> Any:
        if self.error is not None:
            raise self.error
        return parse_config(json.dumps(self.secret))

    def describe(self, secret_id: str) -> dict[str, Any]:
        if self.describe_error is not None:
            raise self.describe_error
        return {
            "Name": secret_id,
            "LastChangedDate": NOW - timedelta(days=self.changed_days_ago),
            "RotationEnabled": False,
        }


class FakeTimer:
    def __init__(self, step: float = 0.25) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def run(**overrides: Any) -> DoctorReport:
    args: dict[str, Any] = {
        "ses": FakeSes(),
        "secret_id": "jada/sender",
        "secret_store": FakeStore(),
        "resolver": PassingResolver(),
        "clock": lambda: NOW,
        "timer": FakeTimer(),
    }
    args.update(overrides)
    return run_doctor(**args)


def check(report: DoctorReport, check_id: str, name: str | None = None) -> Check:
    found = [c for c in report.checks if c.id == check_id and (name is None or c.title == name)]
    assert len(found) == 1, f"{check_id} {name}: {[c.id for c in report.checks]}"
    return found[0]


def failed(report: DoctorReport) -> list[tuple[str, str]]:
    return [(c.id, c.title) for c in report.failed()]


# --- the whole report ------------------------------------------------------------------------------------
def test_a_healthy_setup_passes_every_check() -> None:
    report = run(recipients=["ann@example.com"])
    assert [(c.id, c.status.value, c.evidence) for c in report.checks if c.status is not Level.PASS] == []
    assert report.status is Level.PASS
    assert report.exit_code == 0
    ids = {c.id for c in report.checks}
    assert {
        "secret.contents",
        "secret.age",
        "identity.verified",
        "identity.dkim",
        "identity.mail_from",
        "dns.spf",
        "dns.mail_from",
        "dns.dmarc",
        "dns.dkim_records",
        "account.sending",
        "account.production",
        "account.quota",
        "suppression.account",
        "suppression.list",
        "suppression.recipient",
        "recipients.mx",
    } <= ids
    assert report.identity == DOMAIN
    assert report.region == "us-west-2"


def test_json_shape_is_stable() -> None:
    ses = FakeSes()
    ses.suppress("ann@example.com")
    report = run(ses=ses, recipients=["ann@example.com"])
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) == {
        "status",
        "summary",
        "generated_at",
        "elapsed_s",
        "region",
        "from_address",
        "identity",
        "suppression",
        "checks",
    }
    assert data["status"] == "fail"
    assert data["generated_at"] == "2026-12-04T17:00:00Z"
    assert set(data["summary"]) == {"pass", "warn", "fail"}
    assert sum(data["summary"].values()) == len(data["checks"])
    assert set(data["suppression"]) == {"by_reason", "entries", "pages", "seconds", "capped", "max_pages"}
    for item in data["checks"]:
        assert set(item) == {"id", "layer", "name", "status", "evidence", "fix"}
        assert item["status"] in ("pass", "warn", "fail")
        assert item["layer"] in doctor.LAYERS
        assert item["id"].startswith(item["layer"] + ".")
        if item["status"] == "pass":
            assert item["fix"] is None
        if item["status"] == "fail":
            assert item["fix"]
    failing = [c for c in data["checks"] if c["status"] == "fail"]
    assert [(c["layer"], c["name"]) for c in failing] == [("suppression", "ann@example.com")]
    assert failing[0]["fix"]


def test_checks_are_ordered_by_layer() -> None:
    report = run(recipients=["ann@example.com"], smtp=SmtpOptions(required=False))
    layers = [c.layer for c in report.checks]
    order = list(doctor.LAYERS)
    assert layers == sorted(layers, key=order.index)


def test_no_secret_value_appears_in_json_or_text() -> None:
    options = SmtpOptions(iam_secret_key=IAM_KEY, probe=True)
    probe = lambda *a: ProbeResult("auth_failed", "h", 587, 535, "Authentication Credentials Invalid", "PLAIN")  # noqa: E731
    report = run(smtp=options, smtp_probe=probe, recipients=["ann@example.com"])
    out = io.StringIO()
    doctor.render_text(report, Console(file=out, width=200, force_terminal=False))
    text = json.dumps(report.to_dict()) + out.getvalue() + repr(report) + repr(options)
    for value in (STORED_PASSWORD, IAM_KEY, SECRET["smtp_username"]):
        assert value not in text


# --- Secret ----------------------------------------------------------------------------------------------
def test_secret_contents_names_the_keys_never_the_values() -> None:
    result = check(run(), "secret.contents")
    assert result.status is Level.PASS
    assert "smtp_password" in result.evidence
    assert "values not shown" in result.evidence


def test_a_broken_secret_fails_and_the_identity_layer_is_not_checked() -> None:
    store = FakeStore(error=ConfigError("secret key 'from_address' is required"))
    report = run(secret_store=store)
    assert check(report, "secret.contents").status is Level.FAIL
    assert "from_address" in check(report, "secret.contents").evidence
    assert failed(report) == [("secret.contents", "contents")]
    assert check(report, "identity.verified").evidence.startswith("not checked")
    assert check(report, "dns.spf").status is Level.WARN


def test_no_secret_id_fails_with_the_fix() -> None:
    report = run(secret_id=None)
    result = check(report, "secret.contents")
    assert result.status is Level.FAIL
    assert result.fix and "SENDER_SECRET_ID" in result.fix


def test_an_old_secret_holding_smtp_credentials_warns() -> None:
    result = check(run(secret_store=FakeStore(changed_days_ago=120)), "secret.age")
    assert result.status is Level.WARN
    assert "120 days" in result.evidence
    assert result.fix and "smtp-password" in result.fix


def test_an_old_secret_without_smtp_credentials_passes() -> None:
    secret = {k: v for k, v in SECRET.items() if not k.startswith("smtp_")}
    result = check(run(secret_store=FakeStore(secret=secret, changed_days_ago=400)), "secret.age")
    assert result.status is Level.PASS


def test_a_secret_that_cannot_be_described_warns() -> None:
    error = RuntimeError("AccessDeniedException")
    result = check(run(secret_store=FakeStore(describe_error=error)), "secret.age")
    assert result.status is Level.WARN
    assert result.fix and "DescribeSecret" in result.fix


def test_a_config_file_is_checked_and_flagged_as_not_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SECRET))
    report = run(config_file=path, secret_store=None)
    assert check(report, "secret.source").status is Level.WARN
    assert check(report, "secret.contents").status is Level.PASS
    path.write_text("{not json")
    assert check(run(config_file=path, secret_store=None), "secret.contents").status is Level.FAIL


# --- From identity ---------------------------------------------------------------------------------------
def test_a_missing_identity_fails_once() -> None:
    report = run(ses=FakeSes(identities={}))
    result = check(report, "identity.verified")
    assert result.status is Level.FAIL
    assert result.fix and "create-email-identity --email-identity queenofsandiego.com --region us-west-2" in result.fix
    assert failed(report) == [("identity.verified", "verified for sending")]
    assert check(report, "identity.dkim").evidence == "not checked: no SES identity"
    assert check(report, "dns.dkim_records").status is Level.WARN


def test_an_unverified_domain_fails_with_the_dkim_fix() -> None:
    report = run(ses=FakeSes(identities={DOMAIN: identity(verified=False)}))
    result = check(report, "identity.verified")
    assert result.status is Level.FAIL
    assert "VerificationStatus PENDING" in result.evidence
    assert result.fix and "DKIM" in result.fix


def test_a_verified_address_identity_passes_without_a_domain_identity() -> None:
    ses = FakeSes(identities={"admin@queenofsandiego.com": identity(kind="EMAIL_ADDRESS", mail_from=None)})
    report = run(ses=ses)
    assert check(report, "identity.verified").status is Level.PASS
    assert report.identity == "admin@queenofsandiego.com"


@pytest.mark.parametrize("status", ["PENDING", "NOT_STARTED", "TEMPORARY_FAILURE", "FAILED"])
def test_dkim_that_is_not_verified_fails(status: str) -> None:
    report = run(ses=FakeSes(identities={DOMAIN: identity(dkim=status)}))
    result = check(report, "identity.dkim")
    assert result.status is Level.FAIL
    assert status in result.evidence
    assert result.fix and "_domainkey.queenofsandiego.com" in result.fix
    # One cause, one FAIL: DMARC only warns that it waits for DKIM.
    assert check(report, "dns.dmarc").status is not Level.FAIL


def test_dkim_with_signing_disabled_fails() -> None:
    result = check(run(ses=FakeSes(identities={DOMAIN: identity(signing=False)})), "identity.dkim")
    assert result.status is Level.FAIL
    assert result.fix and "--signing-enabled" in result.fix


def test_no_custom_mail_from_warns() -> None:
    report = run(ses=FakeSes(identities={DOMAIN: identity(mail_from=None)}))
    assert check(report, "identity.mail_from").status is Level.WARN
    assert not [c for c in report.checks if c.id == "dns.mail_from"]


def test_a_failed_mail_from_falling_back_to_ses_warns() -> None:
    ses = FakeSes(identities={DOMAIN: identity(mail_from_status="FAILED")})
    result = check(run(ses=ses), "identity.mail_from")
    assert result.status is Level.WARN
    assert "BehaviorOnMxFailure USE_DEFAULT_VALUE" in result.evidence


def test_a_failed_mail_from_that_rejects_messages_fails() -> None:
    ses = FakeSes(identities={DOMAIN: identity(mail_from_status="FAILED", behavior="REJECT_MESSAGE")})
    result = check(run(ses=ses), "identity.mail_from")
    assert result.status is Level.FAIL
    assert "rejects every send" in result.evidence


def test_access_denied_on_the_identity_names_the_permission() -> None:
    ses = FakeSes(fail={"get_email_identity": BlastFatal("denied", code="AccessDeniedException")})
    result = check(run(ses=ses), "identity.verified")
    assert result.status is Level.FAIL
    assert result.fix and "ses:GetEmailIdentity" in result.fix


# --- DNS (wiring; the checks themselves are in test_dnscheck) --------------------------------------------
def test_dns_checks_use_the_identitys_dkim_tokens_and_mail_from() -> None:
    resolver = PassingResolver()
    resolver.add(f"tokbbb._domainkey.{DOMAIN}", "CNAME", "tokbbb.example.net.")
    report = run(resolver=resolver)
    result = check(report, "dns.dkim_records")
    assert result.status is Level.FAIL
    assert "tokbbb" in result.evidence
    assert ("mail.queenofsandiego.com", "MX") in resolver.queries
    assert check(report, "dns.mail_from").status is Level.PASS


def test_dns_failures_reach_the_report() -> None:
    resolver = PassingResolver()
    resolver.add(DOMAIN, "TXT", "v=spf1 include:amazonses.com ~all", "v=spf1 -all")
    assert check(run(resolver=resolver), "dns.spf").status is Level.FAIL


def test_without_a_resolver_dns_is_not_checked() -> None:
    report = run(resolver=None, recipients=["ann@example.com"])
    assert check(report, "dns.spf").evidence.startswith("not checked")
    assert check(report, "recipients.mx", "ann@example.com").status is Level.WARN


# --- Account ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "check_id", "level", "text"),
    [
        ({"SendingEnabled": False}, "account.sending", Level.FAIL, "SendingEnabled False"),
        ({"EnforcementStatus": "SHUTDOWN"}, "account.sending", Level.FAIL, "SHUTDOWN"),
        ({"EnforcementStatus": "PROBATION"}, "account.sending", Level.WARN, "PROBATION"),
        ({"ProductionAccessEnabled": False}, "account.production", Level.WARN, "sandbox"),
        (
            {"SendQuota": {"Max24HourSend": 1000.0, "MaxSendRate": 1.0, "SentLast24Hours": 850.0}},
            "account.quota",
            Level.WARN,
            "150 left",
        ),
        (
            {"SendQuota": {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 200.0}},
            "account.quota",
            Level.FAIL,
            "0 left",
        ),
        (
            {"SendQuota": {"Max24HourSend": -1.0, "MaxSendRate": 40.0, "SentLast24Hours": 5.0}},
            "account.quota",
            Level.PASS,
            "unlimited",
        ),
    ],
)
def test_account_states(overrides: dict[str, Any], check_id: str, level: Level, text: str) -> None:
    result = check(run(ses=FakeSes(account=account(**overrides))), check_id)
    assert result.status is level
    assert text in result.evidence


def test_quota_evidence_names_the_rate() -> None:
    result = check(run(), "account.quota")
    assert result.evidence == "sent 1,200 of 50,000 in the last 24 hours, 48,800 left; MaxSendRate 14/s"


def test_ses_unreachable_is_one_fail_and_one_call() -> None:
    ses = FakeSes()
    error = TransientSesError("Unable to locate credentials", code="NoCredentialsError")
    ses.fail = dict.fromkeys(
        ["get_email_identity", "get_account", "get_suppressed_destination", "list_suppressed_destinations"], error
    )
    report = run(ses=ses, recipients=["ann@example.com"])
    assert failed(report) == [("account.ses_api", "SES API access")]
    assert len(ses.calls) == 1
    assert check(report, "account.quota").evidence.startswith("not checked: SES unreachable")
    assert check(report, "suppression.recipient", "ann@example.com").status is Level.WARN


def test_a_factory_that_cannot_build_the_client_is_reported() -> None:
    def factory(config: Any) -> Any:
        raise RuntimeError("You must specify a region.")

    report = run(ses=None, ses_factory=factory)
    assert failed(report) == [("account.ses_api", "SES API access")]
    assert "You must specify a region" in check(report, "account.ses_api").evidence


# --- Suppression -----------------------------------------------------------------------------------------
def test_a_suppressed_recipient_fails_with_reason_date_and_the_removal_command() -> None:
    ses = FakeSes()
    ses.suppress("ann@example.com", "BOUNCE", days_ago=3)
    report = run(ses=ses, recipients=["ann@example.com", "ben@example.com"])
    result = check(report, "suppression.recipient", "ann@example.com")
    assert result.status is Level.FAIL
    assert "since 2026-12-01 17:00 UTC (BOUNCE)" in result.evidence
    assert result.fix and "delete-suppressed-destination --email-address ann@example.com" in result.fix
    assert check(report, "suppression.recipient", "ben@example.com").status is Level.PASS


def test_a_complaint_is_not_to_be_removed_lightly() -> None:
    ses = FakeSes()
    ses.suppress("ann@example.com", "COMPLAINT")
    result = check(run(ses=ses, recipients=["ann@example.com"]), "suppression.recipient", "ann@example.com")
    assert result.fix and "do not remove" in result.fix


def test_the_list_is_counted_by_reason() -> None:
    ses = FakeSes()
    for i in range(3):
        ses.suppress(f"b{i}@example.com", "BOUNCE")
    ses.suppress("c@example.com", "COMPLAINT")
    report = run(ses=ses)
    result = check(report, "suppression.list")
    assert result.status is Level.PASS
    assert result.evidence.startswith("BOUNCE 3, COMPLAINT 1: 4 entries in all (1 page read")
    assert report.suppression is not None
    assert report.suppression.by_reason == {"BOUNCE": 3, "COMPLAINT": 1}
    assert not report.suppression.capped


def test_the_count_stops_at_max_pages_and_says_so() -> None:
    ses = FakeSes()
    for i in range(7):
        ses.suppress(f"b{i}@example.com")
    messages: list[tuple[str, bool]] = []
    report = run(
        ses=ses,
        max_suppression_pages=2,
        suppression_page_size=2,
        notify=lambda m, t: messages.append((m, t)),
    )
    assert ses.calls.count("list_suppressed_destinations") == 2
    assert report.suppression is not None
    assert (report.suppression.entries, report.suppression.pages, report.suppression.capped) == (4, 2, True)
    result = check(report, "suppression.list")
    assert "stopped at the cap of 2 pages" in result.evidence
    assert "--max-suppression-pages" in result.evidence
    upfront = [m for m, transient in messages if not transient]
    assert len(upfront) == 1
    assert "paced at 1 a second: 3 lookups (~3 s)" in upfront[0]
    assert "up to 2 suppression-list pages" in upfront[0]
    assert len([m for m, transient in messages if transient]) == 2


def test_max_pages_zero_skips_the_count() -> None:
    ses = FakeSes()
    report = run(ses=ses, max_suppression_pages=0)
    assert "list_suppressed_destinations" not in ses.calls
    assert not [c for c in report.checks if c.id == "suppression.list"]
    assert report.suppression is None


def test_account_level_suppression_off_warns() -> None:
    ses = FakeSes(account=account(SuppressionAttributes={"SuppressedReasons": ["BOUNCE"]}))
    result = check(run(ses=ses), "suppression.account")
    assert result.status is Level.WARN
    assert "not COMPLAINT" in result.evidence


def test_the_doctor_paces_through_the_adapter_and_counts_calls() -> None:
    ses = FakeSes()
    run(ses=ses, recipients=["ann@example.com", "ben@example.com"])
    # two identity candidates, the account, one page, two recipients
    assert len(ses.calls) == 6


# --- Recipients ------------------------------------------------------------------------------------------
def test_recipients_accept_strings_and_objects_and_fail_bad_entries() -> None:
    resolver = PassingResolver()
    resolver.add("example.org", "A", "192.0.2.9")
    resolver.records[("example.org", "MX")] = []
    report = run(recipients=["ann@example.com", {"email": "ben@example.com"}, 42, "not-an-address"], resolver=resolver)
    assert check(report, "recipients.mx", "ann@example.com").status is Level.PASS
    assert check(report, "recipients.mx", "ben@example.com").status is Level.PASS
    assert check(report, "recipients.address", "entry 3").status is Level.FAIL
    assert check(report, "recipients.address", "not-an-address").status is Level.FAIL


def test_a_recipient_domain_without_mail_fails_and_an_a_fallback_warns() -> None:
    resolver = FakeResolver({("example.org", "A"): ["192.0.2.9"]})
    for name, kind, texts in [
        (DOMAIN, "TXT", ["v=spf1 include:amazonses.com -all"]),
        (f"_dmarc.{DOMAIN}", "TXT", ["v=DMARC1; p=none"]),
    ]:
        resolver.add(name, kind, *texts)
    report = run(recipients=["ann@nowhere-at-all.com", "cy@example.org"], resolver=resolver)
    assert check(report, "recipients.mx", "ann@nowhere-at-all.com").status is Level.FAIL
    assert check(report, "recipients.mx", "cy@example.org").status is Level.WARN


# --- SMTP ------------------------------------------------------------------------------------------------
def no_probe(*args: Any) -> ProbeResult:
    raise AssertionError("the probe must not run")


def test_smtp_credentials_missing_fail_when_asked_and_warn_in_lambda() -> None:
    secret = {k: v for k, v in SECRET.items() if not k.startswith("smtp_")}
    asked = run(secret_store=FakeStore(secret=secret), smtp=SmtpOptions(required=True), smtp_probe=no_probe)
    assert check(asked, "smtp.credentials").status is Level.FAIL
    lambda_mode = run(secret_store=FakeStore(secret=secret), smtp=SmtpOptions(required=False), smtp_probe=no_probe)
    result = check(lambda_mode, "smtp.credentials")
    assert result.status is Level.WARN
    assert "10 days ago" in result.evidence


def test_a_username_that_is_not_an_access_key_id_warns() -> None:
    store = FakeStore(secret={**SECRET, "smtp_username": "ses-smtp-user.20240101"})
    result = check(run(secret_store=store, smtp=SmtpOptions(required=True)), "smtp.credentials")
    assert result.status is Level.WARN
    assert "ses-smtp-user" not in result.evidence


def test_the_stored_password_matches_the_derived_one() -> None:
    report = run(smtp=SmtpOptions(iam_secret_key=IAM_KEY))
    assert check(report, "smtp.password").status is Level.PASS
    assert not [c for c in report.checks if c.id == "smtp.auth"]


def test_a_password_from_a_rotated_key_fails() -> None:
    result = check(run(smtp=SmtpOptions(iam_secret_key="a-newer-key-after-rotation")), "smtp.password")
    assert result.status is Level.FAIL
    assert "rotated" in result.evidence
    assert result.fix and "blast smtp-password --region us-west-2" in result.fix


def test_a_password_derived_for_another_region_says_which() -> None:
    store = FakeStore(secret={**SECRET, "smtp_password": derive_smtp_password(IAM_KEY, "us-east-1")})
    result = check(run(secret_store=store, smtp=SmtpOptions(iam_secret_key=IAM_KEY)), "smtp.password")
    assert result.status is Level.FAIL
    assert "for us-east-1, not for us-west-2" in result.evidence


def test_without_an_iam_key_the_password_is_not_compared() -> None:
    result = check(run(smtp=SmtpOptions(required=True)), "smtp.password")
    assert result.status is Level.WARN
    assert result.evidence.startswith("not checked")


@pytest.mark.parametrize(
    ("outcome", "level"),
    [("ok", Level.PASS), ("auth_failed", Level.FAIL), ("no_starttls", Level.FAIL), ("connection_error", Level.WARN)],
)
def test_the_auth_probe_outcome_sets_the_check(outcome: Any, level: Level) -> None:
    seen: list[tuple[Any, ...]] = []

    def probe(host: str, port: int, username: str, password: str) -> ProbeResult:
        seen.append((host, port, username == SECRET["smtp_username"], password == STORED_PASSWORD))
        return ProbeResult(outcome, host, port, 535 if outcome == "auth_failed" else None, "reply", "PLAIN")

    report = run(smtp=SmtpOptions(iam_secret_key=IAM_KEY, probe=True), smtp_probe=probe)
    result = check(report, "smtp.auth")
    assert result.status is level
    assert seen == [("email-smtp.us-west-2.amazonaws.com", 587, True, True)]
    if outcome == "auth_failed":
        assert "535 reply" in result.evidence


# --- output ----------------------------------------------------------------------------------------------
def _text(report: DoctorReport, terminal: bool) -> str:
    out = io.StringIO()
    doctor.render_text(report, Console(file=out, width=160, force_terminal=terminal))
    return out.getvalue()


def test_text_output_is_a_table_with_fixes_and_colour_only_on_a_terminal() -> None:
    ses = FakeSes()
    ses.suppress("ann@example.com")
    report = run(ses=ses, recipients=["ann@example.com"])
    plain = _text(report, terminal=False)
    assert "\x1b[" not in plain
    assert plain.startswith("blast doctor: FAIL  1 failed")
    assert "Fixes" in plain
    assert "1. FAIL Suppression > ann@example.com: If the address works again" in plain
    assert "\x1b[" in _text(report, terminal=True)


def test_exit_status_is_non_zero_only_on_failure() -> None:
    assert run(ses=FakeSes(identities={DOMAIN: identity(mail_from=None)})).exit_code == 0
    assert run(ses=FakeSes(identities={})).exit_code == 1


# --- the CLI and the Lambda action -----------------------------------------------------------------------
@pytest.fixture
def seams(monkeypatch: pytest.MonkeyPatch) -> FakeSes:
    """The CLI's seams: an in-memory SES, a resolver that passes everything, a fake secret store."""
    ses = FakeSes()
    monkeypatch.setattr(doctor, "build_ses", lambda config, settings: ses)
    monkeypatch.setattr(doctor, "resolver_factory", PassingResolver)
    monkeypatch.setattr(doctor, "build_store", FakeStore)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("BLAST_LOG_TO_STDERR", "1")
    monkeypatch.delenv("SES_IAM_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return ses


def test_cli_json_and_exit_status(seams: FakeSes, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("SENDER_SECRET_ID", "jada/sender")
    assert cli.main(["doctor", "--json", "--recipient", "ann@example.com"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["status"] == "pass"
    assert "paced at 1 a second" in err
    seams.suppress("ann@example.com")
    assert cli.main(["doctor", "--json", "--recipient", "ann@example.com"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "fail"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


def test_cli_smtp_reads_the_key_from_stdin_and_probes_over_starttls(
    seams: FakeSes, tls: Tls, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SECRET))
    monkeypatch.setattr("sys.stdin", io.StringIO(IAM_KEY + "\n"))
    real_probe = doctor.probe_smtp_auth
    # The one change to the production path: trust the test's self-signed certificate.
    monkeypatch.setattr(doctor, "probe_smtp_auth", lambda *a, **k: real_probe(*a, **{**k, "ssl_context": tls.client}))
    for server in _serve(STORED_PASSWORD, tls_context=tls.server, require_starttls=True, auth_require_tls=True):
        argv = ["doctor", "--json", "--config", str(config), "--smtp", "--smtp-endpoint", f"127.0.0.1:{server.port}"]
        assert cli.main(argv) == 0
        data = json.loads(capsys.readouterr().out)
        checks = {c["id"]: c for c in data["checks"]}
        assert checks["smtp.password"]["status"] == "pass"
        assert checks["smtp.auth"]["status"] == "pass"
        assert checks["smtp.auth"]["evidence"].startswith(f"AUTH PLAIN accepted by 127.0.0.1:{server.port}: 235")
        assert server.auth.attempts == ["PLAIN"]
        assert STORED_PASSWORD not in json.dumps(data)
        assert IAM_KEY not in json.dumps(data)


def test_cli_smtp_no_probe_compares_only(seams: FakeSes, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("SENDER_SECRET_ID", "jada/sender")
    monkeypatch.setenv("SES_IAM_SECRET_ACCESS_KEY", "a-newer-key-after-rotation")
    monkeypatch.setattr(doctor, "probe_smtp_auth", no_probe)
    assert cli.main(["doctor", "--json", "--smtp", "--no-probe"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in data["checks"] if c["status"] == "fail"] == ["smtp.password"]


def test_lambda_action_returns_the_report(seams: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDER_SECRET_ID", "jada/sender")
    seams.suppress("ann@example.com")
    response = handler.handle(
        {"action": "doctor", "recipients": ["ann@example.com", {"email": "ben@example.com"}]}, None
    )
    assert response["status"] == "fail"
    names = {(c["id"], c["name"]): c["status"] for c in response["checks"]}
    assert names[("suppression.recipient", "ann@example.com")] == "fail"
    assert names[("suppression.recipient", "ben@example.com")] == "pass"
    assert names[("smtp.credentials", "stored credentials")] == "pass"
    assert "smtp.auth" not in {c["id"] for c in response["checks"]}  # no probe from Lambda
    assert "counts" not in response  # the handler's metrics read `counts`: the report must not feed them


# --- done when: the CLI against the SES stand-in ---------------------------------------------------------
@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandin]:
    with SesStandin() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.add_identity(DOMAIN, verified=False, dkim_status="PENDING", tokens=["tokaaa", "tokbbb", "tokccc"])
        server.suppress("ann@example.com", "BOUNCE")
        server.suppress("old@example.net", "COMPLAINT")
        yield server


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CLI wiring, with two seams: a resolver passing everything, and no 1 s pacing."""
    monkeypatch.setattr(doctor, "resolver_factory", PassingResolver)
    monkeypatch.setenv("SES_MANAGEMENT_RATE", "1000")  # SES itself allows ~1/s; the stand-in has no limit
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("BLAST_LOG_TO_STDERR", "1")
    monkeypatch.delenv("SES_IAM_SECRET_ACCESS_KEY", raising=False)


@pytest.fixture
def moto_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{host}:{port}")
        boto3.client("secretsmanager").create_secret(Name="jada/sender", SecretString=json.dumps(SECRET))
        monkeypatch.setenv("SENDER_SECRET_ID", "jada/sender")
        yield "jada/sender"
    finally:
        server.stop()


DONE_WHEN_FAILS = [
    ("identity.verified", "verified for sending"),
    ("identity.dkim", "DKIM"),
    ("suppression.recipient", "ann@example.com"),
]


@pytest.mark.integration
def test_done_when_the_standin_reports_exactly_three_fails_as_json(
    standin: SesStandin, moto_secret: str, cli_env: None, capsys: Any
) -> None:
    code = cli.main(["doctor", "--json", "--recipient", "ann@example.com", "--recipient", "ben@example.com"])
    data = json.loads(capsys.readouterr().out)
    fails = [(c["id"], c["name"]) for c in data["checks"] if c["status"] == "fail"]
    assert fails == DONE_WHEN_FAILS
    assert code == 1
    checks = {(c["id"], c["name"]): c for c in data["checks"]}
    assert "VerificationStatus PENDING" in checks[("identity.verified", "verified for sending")]["evidence"]
    assert "PENDING" in checks[("identity.dkim", "DKIM")]["evidence"]
    assert "(BOUNCE)" in checks[("suppression.recipient", "ann@example.com")]["evidence"]
    for key in DONE_WHEN_FAILS:
        assert checks[key]["fix"]
    assert checks[("secret.contents", "contents")]["status"] == "pass"
    assert checks[("secret.age", "age")]["status"] == "pass"
    assert data["suppression"]["by_reason"] == {"BOUNCE": 1, "COMPLAINT": 1}
    assert standin.stats()["management_requests"] == 6


@pytest.mark.integration
def test_done_when_the_standin_reports_exactly_three_fails_as_text(
    standin: SesStandin, cli_env: None, capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SECRET))
    monkeypatch.setenv("COLUMNS", "200")
    code = cli.main(["doctor", "--config", str(config), "--recipient", "ann@example.com"])
    out = capsys.readouterr().out
    assert code == 1
    assert "blast doctor: FAIL  3 failed" in out
    fixes = out.split("Fixes", 1)[1]
    assert "1. FAIL From identity > verified for sending:" in fixes
    assert "2. FAIL From identity > DKIM:" in fixes
    assert "3. FAIL Suppression > ann@example.com:" in fixes
    assert "\x1b[" not in out


def test_smtp_credentials_are_only_offered_to_ses_endpoints_or_loopback() -> None:
    from sender.doctor import _parse_endpoint

    assert _parse_endpoint("email-smtp.us-west-2.amazonaws.com:465") == ("email-smtp.us-west-2.amazonaws.com", 465)
    assert _parse_endpoint("127.0.0.1:2525") == ("127.0.0.1", 2525)
    with pytest.raises(ValueError, match="not an SES SMTP endpoint"):
        _parse_endpoint("smtp.attacker.example:587")
