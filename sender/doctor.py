"""`blast doctor`: the deliverability investigation behind this project, as one command and one Lambda action.

The incident took a manual walk through every layer (the secret, the SES identity and its DKIM, SPF and
DMARC in DNS, the account, the suppression list, recipient MX records, and SMTP credentials derived from a
rotated IAM key). The doctor walks the same layers and reports each check as PASS, WARN or FAIL with the
evidence and the fix.

Rules it keeps:
- One cause, one FAIL: a check that cannot run because an earlier one failed says "not checked" (WARN)
  instead of failing again.
- No secret value is ever printed or returned: the SMTP password is compared, never shown.
- SES management calls are paced by the adapter (about 1 request/s); the doctor says up front how many it
  will make, and caps the suppression-list count (one call per 1,000 entries) at `max_suppression_pages`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from sender import dnscheck
from sender.config import SenderConfig, parse_config
from sender.dnscheck import Finding, Resolver
from sender.errors import ConfigError, SenderError, SesError
from sender.preflight import identity_candidates
from sender.smtp import (
    SMTP_PORT,
    ProbeResult,
    derive_smtp_password,
    passwords_match,
    probe_smtp_auth,
    region_of_password,
    smtp_endpoint,
)

DEFAULT_MAX_SUPPRESSION_PAGES = 10
SUPPRESSION_PAGE_SIZE = 1000  # SES's largest ListSuppressedDestinations page
MANAGEMENT_RATE = 1.0  # SES management calls per second: SES allows about 1 per account
CREDENTIAL_MAX_AGE_DAYS = 90
LAYERS = {
    "secret": "Secret",
    "identity": "From identity",
    "dns": "DNS",
    "account": "Account",
    "suppression": "Suppression",
    "recipients": "Recipients",
    "smtp": "SMTP",
}
# Errors after which no further SES call can succeed (credentials, network, region): reported once.
SES_UNREACHABLE = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "NoRegionError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
# Names for people, by check id (a check may also carry its own, e.g. a recipient's address).
CHECK_NAMES = {
    "identity.verified": "verified for sending",
    "identity.dkim": "DKIM",
    "identity.mail_from": "MAIL FROM domain",
    "dns.spf": "SPF",
    "dns.dmarc": "DMARC",
    "dns.dkim_records": "DKIM records",
    "dns.mail_from": "MAIL FROM records",
    "account.ses_api": "SES API access",
    "account.sending": "sending enabled",
    "account.production": "production access",
    "account.quota": "24-hour quota",
    "suppression.account": "account-level suppression",
    "suppression.list": "suppression list",
    "smtp.credentials": "stored credentials",
    "smtp.password": "password matches IAM key",
    "smtp.auth": "AUTH probe",
}
ACCESS_KEY_ID_RE = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")

Probe = Callable[[str, int, str, str], ProbeResult]
Notify = Callable[[str, bool], None]  # (message, transient)


class Level(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report. `id` is stable for programs ("dns.spf"); `name` is for people."""

    id: str
    status: Level
    evidence: str
    fix: str | None = None
    name: str | None = None

    @property
    def layer(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def title(self) -> str:
        return self.name or CHECK_NAMES.get(self.id) or self.id.split(".", 1)[1].replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "layer": self.layer,
            "name": self.title,
            "status": self.status.value,
            "evidence": self.evidence,
            "fix": self.fix if self.status is not Level.PASS else None,
        }


@dataclass(frozen=True, slots=True)
class SuppressionCount:
    by_reason: dict[str, int]
    entries: int
    pages: int
    seconds: float
    capped: bool
    max_pages: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "by_reason": dict(self.by_reason),
            "entries": self.entries,
            "pages": self.pages,
            "seconds": round(self.seconds, 2),
            "capped": self.capped,
            "max_pages": self.max_pages,
        }


@dataclass
class DoctorReport:
    checks: list[Check]
    generated_at: datetime
    elapsed_s: float = 0.0
    region: str | None = None
    from_address: str | None = None
    identity: str | None = None
    suppression: SuppressionCount | None = None

    @property
    def status(self) -> Level:
        statuses = {c.status for c in self.checks}
        if Level.FAIL in statuses:
            return Level.FAIL
        return Level.WARN if Level.WARN in statuses else Level.PASS

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(c.status.value for c in self.checks)
        return {level.value: counts.get(level.value, 0) for level in Level}

    @property
    def exit_code(self) -> int:
        return 1 if self.status is Level.FAIL else 0

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Level.FAIL]

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape (CLI --json and the Lambda action). Fields may be added, never renamed."""
        return {
            "status": self.status.value,
            "summary": self.summary,
            "generated_at": self.generated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "elapsed_s": round(self.elapsed_s, 2),
            "region": self.region,
            "from_address": self.from_address,
            "identity": self.identity,
            "suppression": self.suppression.to_dict() if self.suppression is not None else None,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class SmtpOptions:
    """The SMTP layer. `required`: the user asked for it (`--smtp`), so missing credentials FAIL.

    `iam_secret_key` (never shown, never returned) lets the doctor compare the stored password with the one
    derived from the current IAM key; `probe` tries SMTP AUTH with the stored credentials (network egress).
    """

    iam_secret_key: str | None = field(default=None, repr=False)
    probe: bool = False
    host: str | None = None
    port: int = SMTP_PORT
    required: bool = True
    timeout: float = 10.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ses_code(error: BaseException) -> str:
    return str(getattr(error, "code", None) or type(error).__name__)


class _SesUnavailable(Exception):
    """An earlier SES call showed SES cannot be reached: the check is reported as not checked."""


class _Ses:
    """Calls the adapter; the first credentials/network failure is reported once and later calls skipped."""

    def __init__(self, adapter: Any, checks: list[Check], region: str | None) -> None:
        self.adapter = adapter
        self.down: str | None = None if adapter is not None else "no SES client"
        self._checks = checks
        self._region = region

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.down is not None:
            raise _SesUnavailable(self.down)
        try:
            return getattr(self.adapter, method)(*args, **kwargs)
        except SesError as e:
            if _ses_code(e) in SES_UNREACHABLE:
                self.mark_down(f"{_ses_code(e)}: {e.message}")
                raise _SesUnavailable(self.down) from e
            raise

    def iterate(self, method: str, **kwargs: Any) -> Generator[Any, None, None]:
        if self.down is not None:
            raise _SesUnavailable(self.down)
        try:
            yield from getattr(self.adapter, method)(**kwargs)
        except SesError as e:
            if _ses_code(e) in SES_UNREACHABLE:
                self.mark_down(f"{_ses_code(e)}: {e.message}")
                raise _SesUnavailable(self.down) from e
            raise

    def mark_down(self, reason: str) -> None:
        self.down = reason
        self._checks.append(
            Check(
                "account.ses_api",
                Level.FAIL,
                f"SES API in {self._region or 'the default region'} unreachable: {reason}",
                "Give this process AWS credentials for the account that owns the SES identity (AWS_PROFILE, "
                "or the function's role), a region (AWS_REGION or ses_region in the secret), and network "
                "access to SES; SES checks were skipped.",
                name="SES API access",
            )
        )


def _not_checked(check_id: str, why: str, name: str | None = None) -> Check:
    return Check(check_id, Level.WARN, f"not checked: {why}", None, name=name)


def _finding(check_id: str, finding: Finding, name: str | None = None) -> Check:
    return Check(check_id, Level(finding.status), finding.evidence, finding.fix, name=name)


def _ses_failure(check_id: str, error: SesError, action: str, name: str | None = None) -> Check:
    code = _ses_code(error)
    if code in ("AccessDeniedException", "AccessDenied"):
        return Check(
            check_id,
            Level.FAIL,
            f"SES refused {action}: {code}",
            f"Grant ses:{action} to the role or user running the doctor.",
            name=name,
        )
    return Check(check_id, Level.WARN, f"could not check: SES {action} answered {code}: {error.message}", name=name)


def _fmt_time(value: Any) -> str:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value) if value is not None else "an unknown date"


def _days_since(value: Any, now: datetime) -> int | None:
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        return None
    stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    return max(0, (now - stamp).days)


def _set_keys(config: SenderConfig) -> list[str]:
    keys = {
        "from_address": True,
        "reply_to": bool(config.reply_to),
        "configuration_set": config.configuration_set,
        "ses_region": config.ses_region,
        "role_arn": config.role_arn,
        "smtp_username": config.smtp_username,
        "smtp_password": config.smtp_password,
        "list_unsubscribe": config.list_unsubscribe,
    }
    return [k for k, v in keys.items() if v]


# --- Secret ----------------------------------------------------------------------------------------------
@dataclass
class _SecretState:
    config: SenderConfig | None = None
    age_days: int | None = None


def _secret_layer(
    checks: list[Check],
    *,
    config: SenderConfig | None,
    config_file: Path | None,
    secret_id: str | None,
    secret_store: Any,
    store_factory: Callable[[], Any] | None,
    now: datetime,
) -> _SecretState:
    state = _SecretState()
    if config is not None or config_file is not None:
        where = str(config_file) if config_file is not None else "the caller"
        checks.append(
            Check(
                "secret.source",
                Level.WARN,
                f"configuration read from {where}, not from the Secrets Manager secret: the deployed function's "
                "secret was not checked",
                "Run without --config (SENDER_SECRET_ID set) to check the secret the function uses.",
            )
        )
        if config is None and config_file is not None:
            try:
                config = parse_config(config_file.read_text(encoding="utf-8"))
            except OSError as e:
                checks.append(Check("secret.contents", Level.FAIL, f"cannot read {config_file}: {e.strerror}", None))
                return state
            except ConfigError as e:
                checks.append(Check("secret.contents", Level.FAIL, e.message, "Fix the file (see the README)."))
                return state
        assert config is not None
        state.config = config
        checks.append(
            Check("secret.contents", Level.PASS, f"valid; keys set: {', '.join(_set_keys(config))} (values not shown)")
        )
        return state
    if not secret_id:
        checks.append(
            Check(
                "secret.contents",
                Level.FAIL,
                "SENDER_SECRET_ID is not set: no configuration to check",
                "Set SENDER_SECRET_ID to the secret's name or ARN (or pass --config FILE to check a local file).",
            )
        )
        return state
    store = secret_store
    if store is None and store_factory is not None:
        try:
            store = store_factory()
        except Exception as e:  # noqa: BLE001 - boto3 client construction (e.g. no region) must not abort the report
            checks.append(
                Check("secret.contents", Level.FAIL, f"cannot reach Secrets Manager: {type(e).__name__}", None)
            )
            return state
    try:
        state.config = store.load(secret_id, force=True)
    except ConfigError as e:
        # ConfigError messages name keys, never values.
        checks.append(
            Check(
                "secret.contents",
                Level.FAIL,
                e.message,
                "Fix the secret's JSON (see the README's secret section); only from_address is required.",
            )
        )
    else:
        checks.append(
            Check(
                "secret.contents",
                Level.PASS,
                f"{secret_id} is readable, valid JSON; keys set: {', '.join(_set_keys(state.config))} "
                "(values not shown)",
            )
        )
    try:
        meta = store.describe(secret_id)
    except Exception as e:  # noqa: BLE001 - metadata is optional: any failure is a warning, never a crash
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code") or type(e).__name__
        checks.append(
            Check(
                "secret.age",
                Level.WARN,
                f"could not describe {secret_id}: {code}",
                "Grant secretsmanager:DescribeSecret to see when the secret last changed.",
            )
        )
        return state
    changed = [d for d in (meta.get("LastChangedDate"), meta.get("LastRotatedDate")) if d is not None]
    ages = [a for a in (_days_since(d, now) for d in changed) if a is not None]
    rotation = "rotation enabled" if meta.get("RotationEnabled") else "no automatic rotation"
    if not ages:
        checks.append(Check("secret.age", Level.PASS, f"no change date recorded; {rotation}"))
        return state
    state.age_days = min(ages)
    evidence = f"last changed or rotated {state.age_days} days ago; {rotation}"
    holds_smtp = state.config is not None and state.config.smtp_password is not None
    if holds_smtp and state.age_days > CREDENTIAL_MAX_AGE_DAYS:
        checks.append(
            Check(
                "secret.age",
                Level.WARN,
                evidence + f": the SMTP credentials in it are older than {CREDENTIAL_MAX_AGE_DAYS} days",
                "Rotate the SMTP user's IAM access key, derive the new password (`blast smtp-password`), store "
                "both in the secret, and update every relay that uses them (e.g. Gmail's 'Send mail as').",
            )
        )
    else:
        checks.append(Check("secret.age", Level.PASS, evidence))
    return state


# --- From identity ---------------------------------------------------------------------------------------
@dataclass
class _IdentityState:
    name: str | None = None
    found: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dkim_name: str | None = None
    dkim: dict[str, Any] = field(default_factory=dict)
    mail_from: dict[str, Any] = field(default_factory=dict)
    looked_up: bool = False

    @property
    def dkim_domain(self) -> str | None:
        if self.dkim_name is None:
            return None
        return self.dkim_name.rsplit("@", 1)[-1]

    @property
    def dkim_ready(self) -> bool:
        return self.dkim.get("Status") == "SUCCESS" and self.dkim.get("SigningEnabled", True) is not False


def _identity_layer(checks: list[Check], ses: _Ses, config: SenderConfig | None, region: str) -> _IdentityState:
    state = _IdentityState()
    if config is None:
        for check_id in ("identity.verified", "identity.dkim", "identity.mail_from"):
            checks.append(_not_checked(check_id, "no configuration (see Secret)"))
        return state
    candidates = identity_candidates(config.from_email)
    try:
        for candidate in candidates:
            identity = ses.call("get_email_identity", candidate)
            if identity is not None:
                state.found.append((candidate, identity))
    except _SesUnavailable as e:
        for check_id in ("identity.verified", "identity.dkim", "identity.mail_from"):
            checks.append(_not_checked(check_id, f"SES unreachable ({e})"))
        return state
    except SesError as e:
        checks.append(_ses_failure("identity.verified", e, "GetEmailIdentity"))
        checks.append(_not_checked("identity.dkim", "identity lookup failed"))
        checks.append(_not_checked("identity.mail_from", "identity lookup failed"))
        return state
    state.looked_up = True
    domains = ", ".join(candidates[1:])
    if not state.found:
        checks.append(
            Check(
                "identity.verified",
                Level.FAIL,
                f"SES in {region} has no identity for {config.from_email} or {domains}",
                f"Create the domain identity: `aws sesv2 create-email-identity --email-identity {config.from_domain} "
                f"--region {region}`, then publish the three DKIM CNAME records it returns (or set ses_region in "
                "the secret if the identity lives in another region).",
            )
        )
        checks.append(_not_checked("identity.dkim", "no SES identity"))
        checks.append(_not_checked("identity.mail_from", "no SES identity"))
        return state
    verified = [(n, i) for n, i in state.found if i.get("VerifiedForSendingStatus")]
    chosen_name, chosen = verified[0] if verified else state.found[0]
    state.name = chosen_name
    listed = "; ".join(
        f"{n} ({(i.get('IdentityType') or 'identity').lower().replace('_', ' ')}): "
        f"VerificationStatus {i.get('VerificationStatus') or 'unknown'}, "
        f"VerifiedForSendingStatus {bool(i.get('VerifiedForSendingStatus'))}"
        for n, i in state.found
    )
    if verified:
        checks.append(
            Check("identity.verified", Level.PASS, f"{chosen_name} is verified for sending in {region}: {listed}")
        )
    else:
        is_domain = "@" not in chosen_name
        fix = (
            f"SES verifies a domain through its DKIM records: publish the CNAMEs listed by `aws sesv2 "
            f"get-email-identity --email-identity {chosen_name} --region {region}` (see DNS > DKIM records) and "
            "wait for SES to find them (up to 72 hours)."
            if is_domain
            else f"Open the verification link SES mailed to {chosen_name}; to get a new one, delete the identity "
            f"and create it again (`aws sesv2 create-email-identity --email-identity {chosen_name} --region {region}`)."
        )
        if chosen.get("VerificationStatus") == "FAILED":
            fix += " SES stopped trying (FAILED): after fixing DNS, delete and re-create the identity."
        checks.append(
            Check(
                "identity.verified", Level.FAIL, f"no identity verified for sending {config.from_email}: {listed}", fix
            )
        )
    _dkim_check(checks, state, region)
    _mail_from_check(checks, state, config, region)
    return state


def _dkim_check(checks: list[Check], state: _IdentityState, region: str) -> None:
    # SES signs with the most specific domain identity's DKIM; an address identity inherits its domain's.
    domain_identities = [(n, i) for n, i in state.found if "@" not in n]
    ready = [(n, i) for n, i in domain_identities if (i.get("DkimAttributes") or {}).get("Status") == "SUCCESS"]
    source_name, source = (ready or domain_identities or state.found)[0]
    state.dkim_name = source_name
    state.dkim = dict(source.get("DkimAttributes") or {})
    status = state.dkim.get("Status") or "NOT_STARTED"
    signing = state.dkim.get("SigningEnabled", True) is not False
    origin = state.dkim.get("SigningAttributesOrigin") or "AWS_SES"
    tokens = state.dkim.get("Tokens") or []
    signing_text = "enabled" if signing else "DISABLED"
    evidence = f"DKIM for {source_name}: {status}, signing {signing_text} ({origin}, {len(tokens)} tokens)"
    domain = state.dkim_domain
    if status == "SUCCESS" and signing:
        checks.append(Check("identity.dkim", Level.PASS, evidence))
        return
    if status == "SUCCESS":
        checks.append(
            Check(
                "identity.dkim",
                Level.FAIL,
                evidence + ": SES sends unsigned mail",
                f"`aws sesv2 put-email-identity-dkim-attributes --email-identity {source_name} --signing-enabled "
                f"--region {region}`",
            )
        )
        return
    explain = {
        "PENDING": "SES has not found the DKIM records in DNS yet",
        "NOT_STARTED": "DKIM was never set up for this identity",
        "TEMPORARY_FAILURE": "SES could not find the DKIM records lately (removed, or DNS failing); it keeps retrying",
        "FAILED": "SES could not find the DKIM records within 72 hours and stopped looking",
    }.get(status, "DKIM is not verified")
    publish = (
        f"Publish the {len(tokens) or 3} CNAME records <token>._domainkey.{domain} -> <token>.dkim.amazonses.com "
        f"(tokens: `aws sesv2 get-email-identity --email-identity {source_name} --region {region}`; see DNS > DKIM "
        "records)"
    )
    fix = {
        "PENDING": publish + ", then wait: SES checks for up to 72 hours.",
        "NOT_STARTED": f"Set up Easy DKIM for {domain} in SES, then: " + publish + ".",
        "TEMPORARY_FAILURE": publish + " and keep them in place; SES re-checks by itself.",
        "FAILED": publish + ", then restart verification by re-creating the identity.",
    }.get(status, publish + ".")
    checks.append(Check("identity.dkim", Level.FAIL, f"{evidence}: {explain}", fix))


def _mail_from_check(checks: list[Check], state: _IdentityState, config: SenderConfig, region: str) -> None:
    configured = [
        (n, i["MailFromAttributes"])
        for n, i in state.found
        if (i.get("MailFromAttributes") or {}).get("MailFromDomain")
    ]
    if not configured:
        checks.append(
            Check(
                "identity.mail_from",
                Level.WARN,
                "no custom MAIL FROM domain: SES uses amazonses.com as the envelope sender, so SPF never aligns "
                "with the From domain and DMARC rests on DKIM alone",
                f"Set a MAIL FROM subdomain (e.g. mail.{config.from_domain}) with `aws sesv2 "
                f"put-email-identity-mail-from-attributes --email-identity {config.from_domain} --mail-from-domain "
                f"mail.{config.from_domain} --region {region}`, then publish the MX and SPF records SES asks for.",
                name="MAIL FROM domain",
            )
        )
        return
    name, attrs = configured[0]
    state.mail_from = dict(attrs)
    domain = attrs.get("MailFromDomain")
    status = attrs.get("MailFromDomainStatus") or "unknown"
    behavior = attrs.get("BehaviorOnMxFailure") or "USE_DEFAULT_VALUE"
    evidence = f"{domain} (for {name}): MailFromDomainStatus {status}, BehaviorOnMxFailure {behavior}"
    if status == "SUCCESS":
        checks.append(Check("identity.mail_from", Level.PASS, evidence, name="MAIL FROM domain"))
        return
    fix = f"Publish the MX and SPF records for {domain} (see DNS > MAIL FROM records); SES re-checks by itself."
    if behavior == "REJECT_MESSAGE":
        checks.append(
            Check(
                "identity.mail_from",
                Level.FAIL,
                evidence + ": SES rejects every send (MailFromDomainNotVerified) until the domain verifies",
                fix + " Or set BehaviorOnMxFailure to USE_DEFAULT_VALUE to fall back to amazonses.com meanwhile.",
                name="MAIL FROM domain",
            )
        )
        return
    checks.append(
        Check(
            "identity.mail_from",
            Level.WARN,
            evidence + ": SES falls back to amazonses.com, so SPF does not align",
            fix,
            name="MAIL FROM domain",
        )
    )


# --- DNS -------------------------------------------------------------------------------------------------
def _dns_layer(
    checks: list[Check], resolver: Resolver | None, config: SenderConfig | None, identity: _IdentityState, region: str
) -> None:
    if config is None:
        for check_id in ("dns.spf", "dns.dmarc", "dns.dkim_records"):
            checks.append(_not_checked(check_id, "no configuration (see Secret)", name=_DNS_NAMES[check_id]))
        return
    if resolver is None:
        for check_id in ("dns.spf", "dns.dmarc", "dns.dkim_records"):
            checks.append(_not_checked(check_id, "no DNS resolver available", name=_DNS_NAMES[check_id]))
        return
    domain = config.from_domain
    mail_from = identity.mail_from.get("MailFromDomain")
    checks.append(_finding("dns.spf", dnscheck.check_spf(resolver, domain, mail_from_domain=mail_from), "SPF"))
    if mail_from:
        checks.append(
            _finding("dns.mail_from", dnscheck.check_mail_from_dns(resolver, mail_from, region), "MAIL FROM records")
        )
    using_mail_from = mail_from if identity.mail_from.get("MailFromDomainStatus") == "SUCCESS" else None
    dkim_configured = identity.dkim_name is not None and (
        bool(identity.dkim.get("Tokens")) or identity.dkim.get("Status") not in (None, "NOT_STARTED")
    )
    checks.append(
        _finding(
            "dns.dmarc",
            dnscheck.check_dmarc(
                resolver,
                domain,
                dkim_domain=identity.dkim_domain if dkim_configured else None,
                dkim_ready=identity.dkim_ready,
                mail_from_domain=using_mail_from,
                identity_known=identity.dkim_name is not None,
            ),
            "DMARC",
        )
    )
    if identity.dkim_name is None:
        why = "no SES identity" if identity.looked_up else "identity not looked up"
        checks.append(_not_checked("dns.dkim_records", why, name="DKIM records"))
        return
    tokens = list(identity.dkim.get("Tokens") or [])
    checks.append(
        _finding(
            "dns.dkim_records",
            dnscheck.check_dkim_records(
                resolver,
                identity.dkim_domain or domain,
                tokens,
                origin=identity.dkim.get("SigningAttributesOrigin"),
            ),
            "DKIM records",
        )
    )


_DNS_NAMES = {"dns.spf": "SPF", "dns.dmarc": "DMARC", "dns.dkim_records": "DKIM records"}


# --- Account ---------------------------------------------------------------------------------------------
def _account_layer(checks: list[Check], ses: _Ses, region: str) -> dict[str, Any] | None:
    try:
        account = dict(ses.call("get_account"))
    except _SesUnavailable as e:
        for check_id in ("account.sending", "account.production", "account.quota"):
            checks.append(_not_checked(check_id, f"SES unreachable ({e})"))
        return None
    except SesError as e:
        checks.append(_ses_failure("account.sending", e, "GetAccount"))
        return None
    enabled = account.get("SendingEnabled", True) is not False
    enforcement = account.get("EnforcementStatus") or "unknown"
    evidence = f"SendingEnabled {enabled}, EnforcementStatus {enforcement} ({region})"
    if not enabled or enforcement == "SHUTDOWN":
        checks.append(
            Check(
                "account.sending",
                Level.FAIL,
                evidence + ": SES accepts no mail from this account",
                "Read the reason in the SES console's account dashboard (Reputation), fix it, then re-enable with "
                f"`aws sesv2 put-account-sending-attributes --sending-enabled --region {region}` (a SHUTDOWN needs an "
                "AWS support case).",
                name="sending enabled",
            )
        )
    elif enforcement == "PROBATION":
        checks.append(
            Check(
                "account.sending",
                Level.WARN,
                evidence + ": SES is reviewing the account's bounce or complaint rate",
                "Check the reputation dashboard; clean the list (bounces, complaints) before the next blast.",
                name="sending enabled",
            )
        )
    else:
        checks.append(Check("account.sending", Level.PASS, evidence, name="sending enabled"))
    if account.get("ProductionAccessEnabled") is False:
        checks.append(
            Check(
                "account.production",
                Level.WARN,
                "sandbox: SES sends only to verified identities, at most 200 messages a day",
                f"Request production access (SES console > Account dashboard, or `aws sesv2 put-account-details "
                f"--region {region}`).",
                name="production access",
            )
        )
    else:
        checks.append(Check("account.production", Level.PASS, "production access", name="production access"))
    quota = account.get("SendQuota") or {}
    max24 = float(quota.get("Max24HourSend", -1))
    sent = float(quota.get("SentLast24Hours", 0))
    rate = float(quota.get("MaxSendRate", 0) or 0)
    if max24 < 0:
        checks.append(
            Check(
                "account.quota",
                Level.PASS,
                f"24-hour quota unlimited; sent {int(sent)}; MaxSendRate {rate:g}/s",
                name="24-hour quota",
            )
        )
        return account
    left = max(0, int(max24 - sent))
    evidence = f"sent {int(sent):,} of {int(max24):,} in the last 24 hours, {left:,} left; MaxSendRate {rate:g}/s"
    fix = "Wait for the 24-hour window to roll over, or request a higher quota (Service Quotas > Amazon SES)."
    if left == 0:
        checks.append(
            Check("account.quota", Level.FAIL, evidence + ": nothing can be sent now", fix, name="24-hour quota")
        )
    elif sent >= 0.8 * max24:
        checks.append(Check("account.quota", Level.WARN, evidence + ": over 80% used", fix, name="24-hour quota"))
    else:
        checks.append(Check("account.quota", Level.PASS, evidence, name="24-hour quota"))
    return account


# --- Suppression -----------------------------------------------------------------------------------------
def _suppression_layer(
    checks: list[Check],
    ses: _Ses,
    account: dict[str, Any] | None,
    recipients: Sequence[str],
    region: str,
    *,
    max_pages: int,
    page_size: int,
    per_call: float,
    timer: Callable[[], float],
    notify: Notify,
) -> SuppressionCount | None:
    if account is not None:
        reasons = sorted((account.get("SuppressionAttributes") or {}).get("SuppressedReasons") or [])
        missing = [r for r in ("BOUNCE", "COMPLAINT") if r not in reasons]
        if missing:
            checks.append(
                Check(
                    "suppression.account",
                    Level.WARN,
                    f"the account suppression list adds {', '.join(reasons) or 'nothing'}; not {', '.join(missing)}: "
                    "SES keeps sending to addresses that bounced or complained, which costs reputation",
                    "`aws sesv2 put-account-suppression-attributes --suppressed-reasons BOUNCE COMPLAINT "
                    f"--region {region}`",
                    name="account-level suppression",
                )
            )
        else:
            checks.append(
                Check(
                    "suppression.account",
                    Level.PASS,
                    "SES suppresses BOUNCE and COMPLAINT",
                    name="account-level suppression",
                )
            )
    count: SuppressionCount | None = None
    if max_pages > 0:
        count = _count_suppressions(
            checks, ses, max_pages=max_pages, page_size=page_size, per_call=per_call, timer=timer, notify=notify
        )
    for email in recipients:
        try:
            entry = ses.call("get_suppressed_destination", email)
        except _SesUnavailable as e:
            checks.append(_not_checked("suppression.recipient", f"SES unreachable ({e})", name=email))
            continue
        except SesError as e:
            checks.append(_ses_failure("suppression.recipient", e, "GetSuppressedDestination", name=email))
            continue
        if not entry:
            checks.append(Check("suppression.recipient", Level.PASS, "not on the account suppression list", name=email))
            continue
        reason = entry.get("Reason") or "UNKNOWN"
        since = _fmt_time(entry.get("LastUpdateTime"))
        message_id = (entry.get("Attributes") or {}).get("MessageId")
        evidence = f"suppressed since {since} ({reason})" + (f", after message {message_id}" if message_id else "")
        evidence += ": SES drops every message to it"
        remove = f"`aws sesv2 delete-suppressed-destination --email-address {email} --region {region}`"
        if reason == "COMPLAINT":
            fix = (
                "The recipient marked a message as spam: do not remove the entry unless they ask to be mailed "
                f"again; then {remove}."
            )
        else:
            fix = (
                f"If the address works again (mailbox fixed, typo corrected), remove it with {remove}; if it still "
                "bounces, drop it from the list."
            )
        checks.append(Check("suppression.recipient", Level.FAIL, evidence, fix, name=email))
    return count


def _count_suppressions(
    checks: list[Check],
    ses: _Ses,
    *,
    max_pages: int,
    page_size: int,
    per_call: float,
    timer: Callable[[], float],
    notify: Notify,
) -> SuppressionCount | None:
    counts: Counter[str] = Counter()
    entries = 0
    capped = False
    limit = max_pages * page_size
    start = timer()
    iterator = ses.iterate("iter_suppressed_destinations", page_size=page_size)
    try:
        for entry in iterator:
            counts[str(entry.get("Reason") or "UNKNOWN")] += 1
            entries += 1
            if entries % page_size == 0:
                pages = entries // page_size
                notify(
                    f"suppression list: {entries:,} entries in {pages} pages, {timer() - start:.1f} s"
                    f" (stopping after {max_pages} pages)",
                    True,
                )
                if entries >= limit:
                    capped = True
                    break
    except _SesUnavailable as e:
        checks.append(_not_checked("suppression.list", f"SES unreachable ({e})", name="suppression list"))
        return None
    except SesError as e:
        checks.append(_ses_failure("suppression.list", e, "ListSuppressedDestinations", name="suppression list"))
        return None
    finally:
        iterator.close()
    seconds = timer() - start
    pages = max(1, math.ceil(entries / page_size))
    count = SuppressionCount(dict(sorted(counts.items())), entries, pages, seconds, capped, max_pages)
    by_reason = ", ".join(f"{reason} {n:,}" for reason, n in count.by_reason.items()) or "empty"
    read = f"{pages} page{'s' if pages != 1 else ''} read in {seconds:.1f} s"
    if capped:
        evidence = (
            f"{by_reason} in the first {entries:,} entries ({read}); stopped at the cap of {max_pages} pages: the list "
            f"may hold more. A full count takes about {per_call:g} s per {page_size:,} entries (SES management "
            "calls are paced); raise --max-suppression-pages to count further"
        )
    else:
        evidence = f"{by_reason}: {entries:,} entries in all ({read})"
    checks.append(Check("suppression.list", Level.PASS, evidence, name="suppression list"))
    return count


# --- Recipients ------------------------------------------------------------------------------------------
def parse_recipients(items: Sequence[Any]) -> tuple[list[str], list[Check]]:
    """Addresses from strings or {"email": ...} objects (the event's shape); bad entries become FAIL checks."""
    addresses: list[str] = []
    problems: list[Check] = []
    seen: set[str] = set()
    for position, item in enumerate(items, 1):
        raw = item.get("email") if isinstance(item, dict) else item
        if not isinstance(raw, str) or not raw.strip():
            problems.append(
                Check(
                    "recipients.address",
                    Level.FAIL,
                    f'entry {position} is not an address (expected a string or {{"email": ...}})',
                    "Give each recipient as an email address.",
                    name=f"entry {position}",
                )
            )
            continue
        try:
            email = validate_email(raw.strip(), check_deliverability=False).normalized
        except EmailNotValidError as e:
            problems.append(
                Check(
                    "recipients.address",
                    Level.FAIL,
                    f"not a valid address: {e}",
                    "Check the address for a typo.",
                    name=raw.strip()[:254],
                )
            )
            continue
        if email.lower() not in seen:
            seen.add(email.lower())
            addresses.append(email)
    return addresses, problems


def _recipients_layer(checks: list[Check], resolver: Resolver | None, recipients: Sequence[str]) -> None:
    for email in recipients:
        domain = email.rsplit("@", 1)[1]
        if resolver is None:
            checks.append(_not_checked("recipients.mx", "no DNS resolver available", name=email))
            continue
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_domain = domain
        checks.append(_finding("recipients.mx", dnscheck.check_mx(resolver, ascii_domain), email))


# --- SMTP ------------------------------------------------------------------------------------------------
def _smtp_layer(
    checks: list[Check],
    options: SmtpOptions,
    config: SenderConfig | None,
    region: str | None,
    secret_age_days: int | None,
    probe: Probe,
) -> None:
    if config is None:
        checks.append(_not_checked("smtp.credentials", "no configuration (see Secret)", name="stored credentials"))
        return
    username, password = config.smtp_username, config.smtp_password
    age = f"; the secret last changed {secret_age_days} days ago" if secret_age_days is not None else ""
    if not username or not password:
        message = "no smtp_username / smtp_password in the configuration" + age
        if options.required:
            checks.append(
                Check(
                    "smtp.credentials",
                    Level.FAIL,
                    message,
                    "Store the SES SMTP credentials in the secret (smtp_username: the SMTP user's access key ID; "
                    "smtp_password: `blast smtp-password --region REGION` with its secret key) so every relay "
                    "reads them from one place.",
                    name="stored credentials",
                )
            )
        else:
            checks.append(
                Check(
                    "smtp.credentials",
                    Level.WARN,
                    message + ": fine if nothing relays through SES SMTP",
                    "If a mail client relays through SES SMTP (e.g. Gmail's 'Send mail as'), keep its credentials "
                    "in this secret as their single source of truth.",
                    name="stored credentials",
                )
            )
        return
    if ACCESS_KEY_ID_RE.fullmatch(username):
        checks.append(
            Check(
                "smtp.credentials",
                Level.PASS,
                "smtp_username (an access key ID) and smtp_password are stored (values not shown)" + age,
                name="stored credentials",
            )
        )
    else:
        checks.append(
            Check(
                "smtp.credentials",
                Level.WARN,
                "smtp_username is stored but is not an access key ID (AKIA followed by 16 characters): SES SMTP "
                "usernames are the SMTP user's access key ID, not its user name (values not shown)" + age,
                "Store the access key ID of the IAM user whose secret key derived smtp_password.",
                name="stored credentials",
            )
        )
    if region is None:
        checks.append(_not_checked("smtp.password", "the SES region is unknown", name="password matches IAM key"))
        return
    if options.iam_secret_key:
        derived = derive_smtp_password(options.iam_secret_key, region)
        if passwords_match(password, derived):
            checks.append(
                Check(
                    "smtp.password",
                    Level.PASS,
                    f"smtp_password matches the one derived from the IAM key given, for {region}",
                    name="password matches IAM key",
                )
            )
        else:
            other = region_of_password(options.iam_secret_key, password)
            if other is not None:
                evidence = f"smtp_password was derived from this IAM key for {other}, not for {region} where SES sends"
            else:
                evidence = (
                    "smtp_password does not match the IAM key given: the key was rotated after the password was "
                    "stored, or the password came from another key"
                )
            checks.append(
                Check(
                    "smtp.password",
                    Level.FAIL,
                    evidence,
                    f"Derive it again (`blast smtp-password --region {region}`, key on stdin), store it in the secret, "
                    "and update every relay that uses it (e.g. Gmail: Settings > Accounts > Send mail as > edit).",
                    name="password matches IAM key",
                )
            )
    elif options.required:
        checks.append(
            _not_checked(
                "smtp.password",
                "no IAM secret access key given (stdin or SES_IAM_SECRET_ACCESS_KEY)",
                name="password matches IAM key",
            )
        )
    if not options.probe:
        return
    host = options.host or smtp_endpoint(region)
    result = probe(host, options.port, username, password)
    _probe_check(checks, result, region)


def _probe_check(checks: list[Check], result: ProbeResult, region: str) -> None:
    name = "AUTH probe"
    evidence = result.describe()
    if result.ok:
        checks.append(Check("smtp.auth", Level.PASS, evidence, name=name))
    elif result.outcome == "auth_failed":
        checks.append(
            Check(
                "smtp.auth",
                Level.FAIL,
                evidence,
                f"The stored credentials are stale or for another region: derive a fresh password (`blast "
                f"smtp-password --region {region}`) from the SMTP user's current key, store it, update every relay; "
                "check the user may ses:SendRawEmail.",
                name=name,
            )
        )
    elif result.outcome in ("no_starttls", "tls_error"):
        checks.append(
            Check(
                "smtp.auth",
                Level.FAIL,
                evidence,
                "Something between here and SES strips or breaks TLS; credentials must never be sent in clear. "
                "Try from another network.",
                name=name,
            )
        )
    else:
        checks.append(
            Check(
                "smtp.auth",
                Level.WARN,
                evidence,
                "Outbound port 587 may be blocked here; try another network, or --no-probe.",
                name=name,
            )
        )


def _default_probe(options: SmtpOptions) -> Probe:
    def probe(host: str, port: int, username: str, password: str) -> ProbeResult:
        return probe_smtp_auth(host, port, username, password, timeout=options.timeout)

    return probe


# --- the whole walk --------------------------------------------------------------------------------------
def _quiet(message: str, transient: bool) -> None:
    return None


def run_doctor(
    *,
    ses: Any = None,
    ses_factory: Callable[[SenderConfig | None], Any] | None = None,
    config: SenderConfig | None = None,
    config_file: Path | None = None,
    secret_id: str | None = None,
    secret_store: Any = None,
    store_factory: Callable[[], Any] | None = None,
    resolver: Resolver | None = None,
    recipients: Sequence[Any] = (),
    smtp: SmtpOptions | None = None,
    smtp_probe: Probe | None = None,
    region: str | None = None,
    max_suppression_pages: int = DEFAULT_MAX_SUPPRESSION_PAGES,
    suppression_page_size: int = SUPPRESSION_PAGE_SIZE,
    management_rate: float = MANAGEMENT_RATE,
    clock: Callable[[], datetime] = _utcnow,
    timer: Callable[[], float] = time.monotonic,
    notify: Notify | None = None,
) -> DoctorReport:
    """Run every check and return the report. Every dependency is injectable:

    - `ses`: an SesAdapter (or a fake with the same methods), or `ses_factory(config)` building one once the
      configuration (ses_region, role_arn) is known;
    - the configuration: `config` or `config_file` (local testing), else `secret_store.load(secret_id)` with
      `describe(secret_id)` for its dates (`store_factory()` builds the store lazily);
    - `resolver` for DNS (None: DNS checks are reported as not checked); `smtp_probe` for the AUTH probe;
    - `clock` (secret age), `timer` (durations), `notify(message, transient)` for progress;
    - `management_rate`: the adapter's pacing (calls per second), for the time estimates only.
    """
    say = notify or _quiet
    started = timer()
    now = clock()
    checks: list[Check] = []
    secret = _secret_layer(
        checks,
        config=config,
        config_file=config_file,
        secret_id=secret_id,
        secret_store=secret_store,
        store_factory=store_factory,
        now=now,
    )
    config = secret.config
    adapter = ses
    build_error: str | None = None
    if adapter is None and ses_factory is not None:
        try:
            adapter = ses_factory(config)
        except SenderError as e:
            build_error = f"{e.code}: {e.message}"
        except Exception as e:  # noqa: BLE001 - e.g. botocore NoRegionError while building the client
            build_error = f"{type(e).__name__}: {e}"
    ses_region = region or (config.ses_region if config else None) or _adapter_region(adapter)
    shown = ses_region or "REGION"  # in fix commands when the region is unknown
    guarded = _Ses(adapter, checks, ses_region)
    if adapter is None:
        guarded.mark_down(build_error or "no SES client")

    addresses, bad_recipients = parse_recipients(recipients)
    lookups = (len(identity_candidates(config.from_email)) if config else 0) + 1 + len(addresses)
    per_call = 1.0 / management_rate
    if adapter is not None:
        full = math.ceil(100_000 / suppression_page_size) * per_call
        pages = (
            f", then up to {max_suppression_pages} suppression-list pages of {suppression_page_size:,} entries "
            f"(~{per_call:.2g} s each; a list of 100,000 entries takes ~{full:.0f} s to count in full)"
            if max_suppression_pages > 0
            else ""
        )
        say(
            f"SES management calls are paced at {management_rate:g} a second: {lookups} lookups "
            f"(~{lookups * per_call:.0f} s){pages}",
            False,
        )

    identity = _identity_layer(checks, guarded, config, shown)
    _dns_layer(checks, resolver, config, identity, shown)
    account = _account_layer(checks, guarded, shown)
    count = _suppression_layer(
        checks,
        guarded,
        account,
        addresses,
        shown,
        max_pages=max_suppression_pages,
        page_size=suppression_page_size,
        per_call=per_call,
        timer=timer,
        notify=say,
    )
    checks.extend(bad_recipients)
    _recipients_layer(checks, resolver, addresses)
    if smtp is not None:
        probe = smtp_probe if smtp_probe is not None else _default_probe(smtp)
        _smtp_layer(checks, smtp, config, ses_region, secret.age_days, probe)
    order = list(LAYERS)
    checks.sort(key=lambda c: order.index(c.layer) if c.layer in order else len(order))
    return DoctorReport(
        checks=checks,
        generated_at=now,
        elapsed_s=timer() - started,
        region=ses_region,
        from_address=config.from_email if config else None,
        identity=identity.name,
        suppression=count,
    )


def _adapter_region(adapter: Any) -> str | None:
    try:
        region = getattr(adapter, "region", None)
    except Exception:  # noqa: BLE001 - a half-built client must not abort the report
        return None
    return str(region) if region else None


# --- output ----------------------------------------------------------------------------------------------
_STYLE = {Level.PASS: "green", Level.WARN: "yellow", Level.FAIL: "bold red"}


def render_text(report: DoctorReport, console: Any) -> None:
    """A table for people: colour only when the console is a terminal (rich decides; NO_COLOR is honoured)."""
    from rich.table import Table
    from rich.text import Text

    summary = report.summary
    status = report.status
    head = Text()
    head.append(f"blast doctor: {status.value.upper()}", style=_STYLE[status])
    head.append(f"  {summary['fail']} failed, {summary['warn']} warnings, {summary['pass']} passed")
    console.print(head, highlight=False)
    where = [
        f"From {report.from_address}" if report.from_address else None,
        f"identity {report.identity}" if report.identity else None,
        f"SES {report.region}" if report.region else None,
        f"{report.elapsed_s:.1f} s",
    ]
    console.print(Text(" | ".join(w for w in where if w), style="dim"))
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Layer", no_wrap=True)
    table.add_column("Check")
    table.add_column("Evidence", overflow="fold")
    for check in report.checks:
        table.add_row(
            Text(check.status.value.upper(), style=_STYLE[check.status]),
            Text(LAYERS.get(check.layer, check.layer)),
            Text(check.title),
            Text(check.evidence),
        )
    console.print(table)
    todo = [c for c in report.checks if c.status is Level.FAIL] + [
        c for c in report.checks if c.status is Level.WARN and c.fix
    ]
    if todo:
        console.print()
        console.print(Text("Fixes", style="bold"))
        fixes = Table.grid(padding=(0, 1))
        fixes.add_column(no_wrap=True, justify="right")
        fixes.add_column(no_wrap=True)
        fixes.add_column(overflow="fold")
        for n, check in enumerate(todo, 1):
            fixes.add_row(
                Text(f"{n}."),
                Text(check.status.value.upper(), style=_STYLE[check.status]),
                Text(f"{LAYERS.get(check.layer, check.layer)} > {check.title}: {check.fix}"),
            )
        console.print(fixes)


# --- entry points ----------------------------------------------------------------------------------------
def build_ses(config: SenderConfig | None, settings: Any) -> Any:
    """The SES adapter the sender itself would use (region and role from the secret). Test seam."""
    if config is None:
        from sender.ses import SesAdapter

        return SesAdapter(region=settings.region)
    from sender.wiring import ses_adapter

    return ses_adapter(config, settings)


def build_store() -> Any:
    """The Secrets Manager store. Test seam."""
    from sender.config import SecretStore

    return SecretStore()


def resolver_factory() -> Resolver:
    """The DNS resolver. Test seam: tests replace it with a fake."""
    return dnscheck.make_resolver()


def _resolver_or_none() -> Resolver | None:
    try:
        return resolver_factory()
    except Exception:  # noqa: BLE001 - no resolv.conf (some sandboxes): DNS checks say "not checked"
        return None


def run_doctor_event(event: Any, settings: Any) -> dict[str, Any]:
    """The Lambda action `{"action": "doctor", "recipients": [...]}`: the report as JSON-ready dict.

    In Lambda the SMTP layer reports whether credentials are stored and the secret's age; it never probes
    SMTP (the function may have no egress to port 587) and has no IAM key to compare with.
    """
    recipients = list(getattr(event, "recipients", None) or [])
    report = run_doctor(
        ses_factory=lambda config: build_ses(config, settings),
        secret_id=settings.secret_id,
        store_factory=build_store,
        resolver=_resolver_or_none(),
        recipients=recipients,
        smtp=SmtpOptions(required=False, probe=False),
        management_rate=settings.ses_management_rate,
    )
    if getattr(event, "recipients_uri", None):
        report.checks.append(
            Check(
                "recipients.source",
                Level.WARN,
                "recipients_uri is not read by the doctor",
                'List the addresses to check inline: "recipients": ["ann@example.com"]',
                name="recipients_uri",
            )
        )
    return report.to_dict()


# The stored SMTP credentials are only ever offered to SES's own endpoints (or a local test server).
SES_SMTP_HOST = re.compile(r"^email-smtp(-fips)?\.[a-z0-9-]+\.amazonaws\.com$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _parse_endpoint(value: str | None) -> tuple[str | None, int]:
    if not value:
        return None, SMTP_PORT
    host, sep, port = value.rpartition(":")
    if not (sep and port.isdigit() and host):
        host, port = value, str(SMTP_PORT)
    if not (SES_SMTP_HOST.match(host) or host in LOOPBACK_HOSTS):
        raise ValueError(
            f"--smtp-endpoint {host!r} is not an SES SMTP endpoint (email-smtp.<region>.amazonaws.com): "
            "the stored SMTP password is never offered to any other server"
        )
    return host, int(port)


def main(args: argparse.Namespace) -> int:
    """`blast doctor`: exit 0 when nothing fails (warnings allowed), 1 when a check fails, 2 on usage errors."""
    from rich.console import Console

    from sender.settings import Settings
    from sender.smtp import read_iam_secret_key

    err = Console(stderr=True, highlight=False)
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        err.print(f"blast doctor: {e.message}")
        return 2
    max_pages = getattr(args, "max_suppression_pages", DEFAULT_MAX_SUPPRESSION_PAGES)
    if max_pages is None or max_pages < 0:
        err.print("blast doctor: --max-suppression-pages must be 0 or more")
        return 2
    smtp_options = None
    if getattr(args, "smtp", False):
        try:
            host, port = _parse_endpoint(getattr(args, "smtp_endpoint", None))
        except ValueError as e:
            err.print(f"blast doctor: {e}")
            return 2
        key = read_iam_secret_key(prompt="IAM secret access key of the SMTP user (Enter to skip the comparison): ")
        smtp_options = SmtpOptions(
            iam_secret_key=key, probe=not getattr(args, "no_probe", False), host=host, port=port, required=True
        )

    status: Any = None

    def notify(message: str, transient: bool) -> None:
        if not transient:
            err.print(message, style="dim")
        elif status is not None:
            status.update(message)

    with contextlib.ExitStack() as stack:
        if err.is_terminal:
            status = stack.enter_context(err.status("blast doctor: checking...", spinner="dots"))
        report = run_doctor(
            ses_factory=lambda config: build_ses(config, settings),
            config_file=Path(args.config) if getattr(args, "config", None) else None,
            secret_id=settings.secret_id,
            store_factory=build_store,
            resolver=_resolver_or_none(),
            recipients=list(getattr(args, "recipient", None) or []),
            smtp=smtp_options,
            max_suppression_pages=max_pages,
            management_rate=settings.ses_management_rate,
            notify=notify,
        )
    if getattr(args, "json", False):
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render_text(report, Console(highlight=False, soft_wrap=False))
    sys.stdout.flush()
    return report.exit_code
