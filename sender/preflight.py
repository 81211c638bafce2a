"""Checks before any SendEmail: can and may SES send this blast from this identity?

Each refusal names what is wrong and what to fix, because the incident behind this project was a
send that failed in a way nobody could explain quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sender.config import SenderConfig
from sender.errors import DkimNotVerified, IdentityNotVerified, QuotaExceeded, SendingDisabled
from sender.ses import SesAdapter


@dataclass
class Preflight:
    identity: str
    identity_type: str | None
    dkim_status: str | None
    sandbox: bool
    max_send_rate: float
    quota_left: int | None  # None: unlimited
    enforcement: str | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "identity_type": self.identity_type,
            "dkim_status": self.dkim_status,
            "sandbox": self.sandbox,
            "max_send_rate": self.max_send_rate,
            "quota_left": self.quota_left,
            "enforcement": self.enforcement,
            "warnings": list(self.warnings),
        }


def identity_candidates(email: str) -> list[str]:
    """The address, its domain, then each parent domain down to two labels (SES's own lookup order)."""
    domain = email.rsplit("@", 1)[1].lower()
    labels = domain.split(".")
    candidates = [email]
    for i in range(len(labels) - 1):
        candidates.append(".".join(labels[i:]))
    return candidates


def _dkim_ok(identity: dict[str, Any]) -> bool:
    dkim = identity.get("DkimAttributes") or {}
    return dkim.get("Status") == "SUCCESS" and dkim.get("SigningEnabled", True) is not False


def check_identity(
    ses: SesAdapter, config: SenderConfig, *, require_dkim: bool
) -> tuple[str, dict[str, Any], list[str]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for candidate in identity_candidates(config.from_email):
        identity = ses.get_email_identity(candidate)
        if identity is None:
            continue
        found.append((candidate, identity))
        if identity.get("VerifiedForSendingStatus"):
            break
    verified = [(name, ident) for name, ident in found if ident.get("VerifiedForSendingStatus")]
    if not verified:
        if not found:
            raise IdentityNotVerified(
                f"SES in {ses.region} has no identity for {config.from_email} or its domains "
                f"({', '.join(identity_candidates(config.from_email)[1:])}). "
                "Fix: create and verify the domain identity in this region, or set ses_region in the secret."
            )
        listed = ", ".join(f"{name} ({(ident.get('VerificationStatus') or 'NOT_VERIFIED')})" for name, ident in found)
        raise IdentityNotVerified(
            f"no identity verified for sending {config.from_email} in {ses.region}: {listed}. "
            "Fix: finish verification (DNS records for a domain, the link for an address)."
        )
    name, identity = verified[0]
    warnings: list[str] = []
    if not any(_dkim_ok(ident) for _, ident in found):
        status = (identity.get("DkimAttributes") or {}).get("Status", "NOT_STARTED")
        signing = (identity.get("DkimAttributes") or {}).get("SigningEnabled")
        detail = f"DKIM status of {name} is {status}" + ("" if signing is not False else ", signing disabled")
        if require_dkim:
            raise DkimNotVerified(
                f"{detail}. Mail without DKIM is likely to be rejected or junked. Fix: publish the three "
                "DKIM CNAME records SES gives for the domain and wait for SUCCESS, or send with "
                '"require_dkim": false if you accept the risk.'
            )
        warnings.append(f"{detail}; sending anyway because require_dkim is false")
    return name, identity, warnings


def check_quota(recipients: int | None, left: int | None, *, resumed: bool, limit: int | None = None) -> list[str]:
    """Refuse a blast with more recipients than the 24-hour quota left (None: unlimited or unknown).

    A resumed blast is only warned: those already sent count in SentLast24Hours and are skipped by the
    ledger, so the list's length overstates what is left to send. SES's own daily-quota answer still stops
    it."""
    if left is None or recipients is None or recipients <= left:
        return []
    if resumed:
        return [
            f"{recipients} recipients listed and {left} of the 24-hour quota left; this run resumes a blast and "
            "skips those already sent: SES stops it if the quota runs out"
        ]
    of = f" of {limit}" if limit is not None else ""
    raise QuotaExceeded(
        f"this blast has {recipients} recipients but only {left} of the 24-hour quota{of} is left. Fix: wait "
        "for the quota to roll over, split the blast, or request a higher quota."
    )


def check_account(
    ses: SesAdapter, *, recipients: int | None, resumed: bool = False
) -> tuple[dict[str, Any], float, int | None, bool, list[str]]:
    account = ses.get_account()
    if account.get("SendingEnabled") is False:
        raise SendingDisabled(
            "SES sending is disabled for this account (SendingEnabled is false). Fix: resolve the reason "
            "in the SES console's account dashboard, then `aws sesv2 put-account-sending-attributes "
            "--sending-enabled`."
        )
    enforcement = account.get("EnforcementStatus")
    if enforcement == "SHUTDOWN":
        raise SendingDisabled("SES has shut down sending for this account (EnforcementStatus SHUTDOWN).")
    quota = account.get("SendQuota") or {}
    max24 = float(quota.get("Max24HourSend", -1))
    sent24 = float(quota.get("SentLast24Hours", 0))
    rate = float(quota.get("MaxSendRate", 1) or 1)
    left = None if max24 < 0 else max(0, int(max24 - sent24))
    warnings = check_quota(recipients, left, resumed=resumed, limit=None if max24 < 0 else int(max24))
    sandbox = not bool(account.get("ProductionAccessEnabled", True))
    return account, rate, left, sandbox, warnings


def run_preflight(
    ses: SesAdapter, config: SenderConfig, *, recipients: int | None, require_dkim: bool, resumed: bool = False
) -> Preflight:
    name, identity, warnings = check_identity(ses, config, require_dkim=require_dkim)
    account, rate, left, sandbox, quota_warnings = check_account(ses, recipients=recipients, resumed=resumed)
    warnings.extend(quota_warnings)
    if sandbox:
        warnings.append(
            "the SES account is in the sandbox: it can send only to verified identities, "
            "at most 200 messages a day. Request production access before a real blast."
        )
    return Preflight(
        identity=name,
        identity_type=identity.get("IdentityType"),
        dkim_status=(identity.get("DkimAttributes") or {}).get("Status"),
        sandbox=sandbox,
        max_send_rate=rate,
        quota_left=left,
        enforcement=account.get("EnforcementStatus"),
        warnings=warnings,
    )
