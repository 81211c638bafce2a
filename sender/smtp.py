"""SES SMTP credentials: derive the password from an IAM key, and probe SMTP AUTH against an endpoint.

SES SMTP passwords are not IAM secrets: they are an AWS SigV4 signature of a fixed message, keyed by the
IAM secret access key and scoped to one region (SES's documented algorithm). A password derived for
us-east-1 does not work in us-west-2, and rotating the IAM key invalidates every password derived from it:
the two ways the "Send mail as" relay in the incident went stale.

Nothing here logs, raises or returns a secret: the probe's result carries the server's reply only, with any
echo of the credentials removed.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import re
import smtplib
import ssl
import sys
from dataclasses import dataclass
from typing import Literal, TextIO

# SES's published constants for SMTP password derivation.
_DATE = "11111111"
_SERVICE = "ses"
_TERMINAL = "aws4_request"
_MESSAGE = "SendRawEmail"
_VERSION = 0x04

IAM_KEY_ENV = "SES_IAM_SECRET_ACCESS_KEY"
SMTP_PORT = 587  # STARTTLS; 25 and 2587 work too, 465/2465 are implicit TLS (not probed here)
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
# Regions with an SES SMTP endpoint (SES endpoints page). Used to warn about a typo and to tell which
# region a stored password was derived for; derivation itself works for any region name.
SMTP_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "sa-east-1",
    "mx-central-1", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1",
    "eu-south-1", "eu-south-2", "il-central-1", "me-south-1", "me-central-1", "af-south-1",
    "ap-south-1", "ap-south-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
    "ap-southeast-2", "ap-southeast-3", "ap-southeast-5", "us-gov-west-1", "us-gov-east-1",
)  # fmt: skip


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def derive_smtp_password(secret_access_key: str, region: str) -> str:
    """The SES SMTP password for this IAM secret access key in this region (SES's SigV4-based algorithm)."""
    if not secret_access_key:
        raise ValueError("the IAM secret access key is empty")
    if not region:
        raise ValueError("the region is empty")
    signature = _sign(("AWS4" + secret_access_key).encode("utf-8"), _DATE)
    for part in (region, _SERVICE, _TERMINAL, _MESSAGE):
        signature = _sign(signature, part)
    return base64.b64encode(bytes([_VERSION]) + signature).decode("ascii")


def passwords_match(stored: str, derived: str) -> bool:
    """Constant-time comparison (the stored value is a secret)."""
    return hmac.compare_digest(stored.encode("utf-8"), derived.encode("utf-8"))


def region_of_password(secret_access_key: str, stored: str, regions: tuple[str, ...] = SMTP_REGIONS) -> str | None:
    """The region whose derivation gives the stored password, if any: explains a 'wrong region' mismatch."""
    for region in regions:
        if passwords_match(stored, derive_smtp_password(secret_access_key, region)):
            return region
    return None


def smtp_endpoint(region: str) -> str:
    return f"email-smtp.{region}.amazonaws.com"


# --- the AUTH probe --------------------------------------------------------------------------------------
Outcome = Literal["ok", "auth_failed", "no_starttls", "tls_error", "no_auth", "connection_error", "smtp_error"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the server said. `code` and `message` are the server's own reply (credentials scrubbed)."""

    outcome: Outcome
    host: str
    port: int
    code: int | None = None
    message: str = ""
    mechanism: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def describe(self) -> str:
        where = f"{self.host}:{self.port}"
        reply = f"{self.code} {self.message}".strip() if self.code is not None else self.message
        labels = {
            "ok": f"AUTH {self.mechanism} accepted by {where}",
            "auth_failed": f"{where} refused AUTH {self.mechanism}",
            "no_starttls": f"{where} does not offer STARTTLS; credentials were not sent",
            "tls_error": f"TLS with {where} failed; credentials were not sent",
            "no_auth": f"{where} offers neither AUTH PLAIN nor AUTH LOGIN after STARTTLS",
            "connection_error": f"could not talk to {where}",
            "smtp_error": f"{where} answered unexpectedly",
        }
        label = labels[self.outcome]
        return f"{label}: {reply}" if reply else label


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Remove any echo of the credentials (raw or base64, as AUTH sends them) from a server reply."""
    for secret in secrets:
        if not secret:
            continue
        forms = {secret, base64.b64encode(secret.encode("utf-8")).decode("ascii")}
        for form in forms:
            text = text.replace(form, "[redacted]")
    return text[:500]


def _reply_text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)


def probe_smtp_auth(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    local_hostname: str = "localhost",
) -> ProbeResult:
    """Connect, STARTTLS (required: credentials never cross the wire in clear), then AUTH PLAIN or LOGIN.

    The server's certificate is verified against the system's CAs unless `ssl_context` says otherwise
    (tests pass one that trusts their self-signed certificate). Nothing is sent after AUTH: no mail.
    """
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    plain = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    secrets = (password, plain)
    mechanism: str | None = None

    def result(outcome: Outcome, code: int | None = None, message: str = "") -> ProbeResult:
        return ProbeResult(outcome, host, port, code, _scrub(message, secrets), mechanism)

    try:
        # local_hostname given: smtplib would otherwise look up this machine's FQDN.
        with smtplib.SMTP(host, port, timeout=timeout, local_hostname=local_hostname) as client:
            client.ehlo()
            if not client.has_extn("starttls"):
                return result("no_starttls")
            try:
                client.starttls(context=context)
            except ssl.SSLError as e:
                return result("tls_error", None, e.reason or type(e).__name__)
            client.ehlo()
            offered = client.esmtp_features.get("auth", "").upper().split()
            mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
            if mechanism is None:
                return result("no_auth", None, f"offered: {' '.join(offered) or 'none'}")
            client.user, client.password = username, password
            authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            code, reply = client.auth(mechanism, authobject, initial_response_ok=True)
            return result("ok", code, _reply_text(reply))
    except smtplib.SMTPAuthenticationError as e:
        return result("auth_failed", e.smtp_code, _reply_text(e.smtp_error))
    except smtplib.SMTPResponseException as e:
        return result("smtp_error", e.smtp_code, _reply_text(e.smtp_error))
    except ssl.SSLError as e:
        return result("tls_error", None, e.reason or type(e).__name__)
    except (OSError, smtplib.SMTPException) as e:
        return result("connection_error", None, f"{type(e).__name__}: {e}")


# --- `blast smtp-password` -----------------------------------------------------------------------------
def read_iam_secret_key(*, prompt: str, stdin: TextIO | None = None) -> str | None:
    """The IAM secret access key from SES_IAM_SECRET_ACCESS_KEY, else stdin (a hidden prompt on a terminal).

    Never from argv: a command line is visible to every user of the machine and lands in shell history.
    """
    value = os.environ.get(IAM_KEY_ENV, "").strip()
    if value:
        return value
    stream = stdin if stdin is not None else sys.stdin
    if stream is None:
        return None
    value = getpass.getpass(prompt) if stream.isatty() else stream.read()
    value = (value or "").strip()
    return value or None


def main(args: argparse.Namespace) -> int:
    region = str(args.region).strip().lower()
    if not REGION_RE.fullmatch(region):
        print(f"blast smtp-password: {args.region!r} is not an AWS region name (e.g. us-west-2)", file=sys.stderr)
        return 2
    if region not in SMTP_REGIONS:
        print(f"warning: {region} is not a region known to have an SES SMTP endpoint", file=sys.stderr)
    key = read_iam_secret_key(prompt="IAM secret access key: ")
    if key is None:
        print(
            f"blast smtp-password: no IAM secret access key: pipe it on stdin or set {IAM_KEY_ENV}",
            file=sys.stderr,
        )
        return 2
    if any(c.isspace() for c in key):
        print("blast smtp-password: the key holds whitespace; paste the secret access key alone", file=sys.stderr)
        return 2
    print(derive_smtp_password(key, region))
    return 0
