"""A local SES v2 stand-in that speaks the rest-json protocol exactly as botocore sends it.

Point a real client at it with ``AWS_ENDPOINT_URL_SESV2=<endpoint_url>`` (plus dummy credentials
and region, see ``SesStandin.env()``). It implements SendEmail (Simple, Raw, Template), GetAccount,
GetEmailIdentity, GetSuppressedDestination, ListSuppressedDestinations and
PutSuppressedDestination, records every accepted message, and can be made to throttle, slow down,
reject or pause, both at construction and at run time through ``/_standin/...`` control endpoints.

In-process::

    with SesStandin(max_send_rate=100) as ses:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", ses.endpoint_url)
        ...
        assert ses.stats()["peak_recipients_per_window"] <= 100

Own process (prints ``READY http://127.0.0.1:PORT`` and serves until SIGTERM)::

    python -m tests.standin.ses_server --port 0 --max-send-rate 100 --latency-ms 80

Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import fnmatch
import json
import random
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

HOST = "127.0.0.1"
WINDOW_S = 1.0
SUPPRESSION_REASONS = ("BOUNCE", "COMPLAINT")
MAX_PAGE_SIZE = 1000
_TOKEN_PREFIX = "standin-after:"  # NextToken = base64url(prefix + last address of the page)

# HTTP status for each error code the stand-in can answer with (anything else: 400).
ERROR_STATUS: dict[str, int] = {
    "BadRequestException": 400,
    "MessageRejected": 400,
    "SendingPausedException": 400,
    "AccountSuspendedException": 400,
    "MailFromDomainNotVerifiedException": 400,
    "LimitExceededException": 400,
    "InvalidNextTokenException": 400,
    "NotFoundException": 404,
    "UnknownOperationException": 404,
    "TooManyRequestsException": 429,
    "InternalFailure": 500,
    "InternalServiceErrorException": 500,
    "ServiceUnavailable": 503,
}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}

# Knobs and their defaults. Every one can be given to SesStandin(...), configure(...) and
# POST /_standin/config.
DEFAULT_KNOBS: dict[str, Any] = {
    # SendEmail recipients per rolling 1 s window; None = unlimited. Over it: 429 TooManyRequests.
    "max_send_rate": None,
    # Added to every SendEmail answer (accepted or not): latency_ms +/- uniform(latency_jitter_ms).
    "latency_ms": 0.0,
    "latency_jitter_ms": 0.0,
    # Requests per rolling 1 s window for every SES call other than SendEmail; None = unlimited.
    "management_rate": None,
    # List of rules, each {"recipient": glob, "from": glob, "code": ..., "status": ..., "message": ...,
    # "times": N}; a SendEmail matching a rule fails with that error (MessageRejected/400 by default),
    # at most `times` times when given.
    "fail_with": [],
    # After this many accepted sends (since the last reset) every SendEmail answers
    # 400 SendingPausedException and GetAccount reports SendingEnabled false.
    "pause_after": None,
    # Probability that a SendEmail answers 500 InternalFailure.
    "error_rate": 0.0,
    # Seed for jitter and error_rate; None = unseeded.
    "seed": None,
    # Refuse (MessageRejected) a From whose address or domain is not a verified identity.
    "require_verified_sender": False,
    # Recipients allowed in one message (real SES: 50); more gives 400 BadRequestException.
    "max_recipients_per_message": 50,
    # Keep message bodies (raw bytes / simple content); False keeps only metadata.
    "record_content": True,
    # GetAccount. reported_max_send_rate None = max_send_rate (or 14.0 when that is None too).
    # SentLast24Hours reported = sent_last_24_hours + recipients accepted since the last reset.
    "max_24_hour_send": 50000.0,
    "sent_last_24_hours": 0.0,
    "reported_max_send_rate": None,
    "sending_enabled": True,
    "production_access_enabled": True,
    "enforcement_status": "HEALTHY",
    # Refuse sends past Max24HourSend (429 TooManyRequestsException "Daily message quota exceeded.").
    "enforce_daily_quota": False,
}


class SesError(Exception):
    """An SES error answer: HTTP status, x-amzn-ErrorType code and message."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(code, 400)


def rolling_peak(timestamps: Iterable[float], counts: Iterable[int] | None = None,
                 window: float = WINDOW_S) -> int:
    """Largest sum of counts over events whose timestamps lie within `window` of each other.

    Two events are in the same window when the later minus the earlier is < window (the same
    rule the stand-in's rate limiter uses), so the peak of accepted sends never exceeds
    max_send_rate. counts=None counts each event as 1. Timestamps need not be sorted.
    """
    ts = list(timestamps)
    cs = [1] * len(ts) if counts is None else list(counts)
    if len(cs) != len(ts):
        raise ValueError("timestamps and counts differ in length")
    events = sorted(zip(ts, cs, strict=True))
    peak = running = left = 0
    for t, c in events:
        running += c
        while t - events[left][0] >= window:
            running -= events[left][1]
            left += 1
        peak = max(peak, running)
    return peak


def _normalize(address: str) -> str:
    """'Ann <Ann@Example.com>' -> 'ann@example.com'."""
    pairs = getaddresses([address])
    addr = pairs[0][1] if pairs and pairs[0][1] else address
    return addr.strip().lower()


def _parse_time(value: str) -> float:
    """Epoch seconds from what botocore puts in a query string (ISO 8601) or a number."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise SesError("BadRequestException", f"Invalid timestamp: {value!r}") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _to_epoch(value: float | datetime | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp()
    return float(value)


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """One SendEmail the stand-in accepted."""

    seq: int
    message_id: str
    monotonic: float
    wall: float
    recipients: int
    addresses: tuple[str, ...]
    from_address: str | None
    destination: dict[str, Any] | None
    reply_to: tuple[str, ...]
    configuration_set: str | None
    email_tags: tuple[dict[str, str], ...]
    kind: str  # "Simple", "Raw" or "Template"
    raw: bytes | None = None
    simple: dict[str, Any] | None = None
    template: dict[str, Any] | None = None

    def to_json(self, content: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq, "message_id": self.message_id, "monotonic": self.monotonic,
            "wall": self.wall, "recipients": self.recipients, "addresses": list(self.addresses),
            "from_address": self.from_address, "destination": self.destination,
            "reply_to": list(self.reply_to), "configuration_set": self.configuration_set,
            "email_tags": list(self.email_tags), "kind": self.kind,
        }
        if content:
            out["raw"] = base64.b64encode(self.raw).decode("ascii") if self.raw is not None else None
            out["simple"] = self.simple
            out["template"] = self.template
        return out


class _Window:
    """Sum of amounts over a rolling window, on time.monotonic()."""

    __slots__ = ("_events", "total")

    def __init__(self) -> None:
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self.total = 0

    def current(self, now: float) -> int:
        events = self._events
        while events and now - events[0][0] >= WINDOW_S:
            self.total -= events.popleft()[1]
        return self.total

    def add(self, now: float, amount: int) -> None:
        self._events.append((now, amount))
        self.total += amount

    def clear(self) -> None:
        self._events.clear()
        self.total = 0


def _check_rules(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        raise ValueError("fail_with must be a list of rules")
    checked = []
    allowed = {"recipient", "from", "code", "status", "message", "times"}
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - allowed:
            raise ValueError(f"fail_with rule must be a dict with keys among {sorted(allowed)}: {rule!r}")
        checked.append({**rule, "fired": 0})
    return checked


class SesStandin:
    """The stand-in: state, knobs, and an HTTP server on 127.0.0.1 in a background thread."""

    def __init__(self, port: int = 0, **knobs: Any) -> None:
        self._requested_port = port
        self._lock = threading.Lock()
        self._knobs: dict[str, Any] = {**DEFAULT_KNOBS, "fail_with": []}
        self._apply(knobs)
        self._initial_knobs = {**self._knobs, "fail_with": [dict(r) for r in self._knobs["fail_with"]]}
        self._identities: dict[str, dict[str, Any]] = {}
        self._suppressed: dict[str, dict[str, Any]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clear_state()

    # ----- lifecycle -----
    def start(self) -> SesStandin:
        if self._server is not None:
            return self
        server = _Server((HOST, self._requested_port), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ses-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SesStandin:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment that makes boto3.client("sesv2") talk to this stand-in."""
        return {"AWS_ENDPOINT_URL_SESV2": self.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-west-2",
                "AWS_REGION": "us-west-2"}

    # ----- knobs and fixtures -----
    def _apply(self, knobs: dict[str, Any]) -> None:
        unknown = set(knobs) - set(DEFAULT_KNOBS)
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        if "fail_with" in knobs:
            knobs = {**knobs, "fail_with": _check_rules(knobs["fail_with"])}
        self._knobs.update(knobs)
        if "seed" in knobs:
            self._rng = random.Random(self._knobs["seed"])

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time; returns the whole configuration."""
        with self._lock:
            self._apply(knobs)
            return self._config_locked()

    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config_locked()

    def _config_locked(self) -> dict[str, Any]:
        return {**self._knobs, "fail_with": [dict(r) for r in self._knobs["fail_with"]]}

    def add_identity(self, identity: str, *, verified: bool = True, dkim_status: str = "SUCCESS",
                     signing_enabled: bool = True, tokens: Sequence[str] | None = None,
                     signing_attributes_origin: str = "AWS_SES", mail_from_domain: str | None = None,
                     mail_from_status: str = "SUCCESS",
                     behavior_on_mx_failure: str = "USE_DEFAULT_VALUE",
                     verification_status: str | None = None, **fields: Any) -> dict[str, Any]:
        """Add (or replace) an identity for GetEmailIdentity; `fields` override response members."""
        response: dict[str, Any] = {
            "IdentityType": "EMAIL_ADDRESS" if "@" in identity else "DOMAIN",
            "FeedbackForwardingStatus": True,
            "VerifiedForSendingStatus": verified,
            "VerificationStatus": verification_status or ("SUCCESS" if verified else "PENDING"),
            "DkimAttributes": {
                "SigningEnabled": signing_enabled, "Status": dkim_status,
                "Tokens": list(tokens) if tokens is not None else [f"tok{i}{uuid.uuid4().hex[:12]}"
                                                                   for i in range(3)],
                "SigningAttributesOrigin": signing_attributes_origin,
            },
            "Policies": {},
            "Tags": [],
        }
        if mail_from_domain:
            response["MailFromAttributes"] = {"MailFromDomain": mail_from_domain,
                                              "MailFromDomainStatus": mail_from_status,
                                              "BehaviorOnMxFailure": behavior_on_mx_failure}
        response.update(fields)
        with self._lock:
            self._identities[identity.lower()] = response
        return response

    def suppress(self, email: str, reason: str = "BOUNCE",
                 last_update_time: float | datetime | None = None) -> None:
        """Put an address on the account suppression list (LastUpdateTime default: now)."""
        if reason not in SUPPRESSION_REASONS:
            raise ValueError(f"reason must be one of {SUPPRESSION_REASONS}")
        with self._lock:
            self._suppressed[email.lower()] = {"EmailAddress": email, "Reason": reason,
                                               "LastUpdateTime": _to_epoch(last_update_time)}

    # ----- recorded state -----
    def _clear_state(self) -> None:
        self._messages: list[AcceptedMessage] = []
        self._per_recipient: collections.Counter[str] = collections.Counter()
        self._errors: collections.Counter[str] = collections.Counter()
        self._send_window = _Window()
        self._mgmt_window = _Window()
        self._accepted_recipients = 0
        self._send_requests = 0
        self._throttled = 0
        self._mgmt_requests = 0
        self._mgmt_throttled = 0
        self._rng = random.Random(self._knobs["seed"])
        for rule in self._knobs["fail_with"]:
            rule["fired"] = 0

    def reset(self, full: bool = False) -> None:
        """Forget accepted messages and counters; full=True also restores the construction knobs
        and empties identities and the suppression list."""
        with self._lock:
            if full:
                self._knobs = {**self._initial_knobs,
                               "fail_with": [dict(r) for r in self._initial_knobs["fail_with"]]}
                self._identities.clear()
                self._suppressed.clear()
            self._clear_state()

    def accepted(self, since: int = 0) -> list[AcceptedMessage]:
        """Accepted messages, oldest first, from sequence number `since` on."""
        with self._lock:
            return self._messages[since:]

    def stats(self, per_recipient: bool = True) -> dict[str, Any]:
        with self._lock:
            messages = list(self._messages)
            out: dict[str, Any] = {
                "accepted": len(messages),
                "accepted_recipients": self._accepted_recipients,
                "send_requests": self._send_requests,
                "throttled": self._throttled,
                "errors": dict(self._errors),
                "paused": self._paused_locked(),
                "management_requests": self._mgmt_requests,
                "management_throttled": self._mgmt_throttled,
                "distinct_recipients": len(self._per_recipient),
                "duplicates": sorted(a for a, n in self._per_recipient.items() if n > 1),
            }
            if per_recipient:
                out["per_recipient"] = dict(self._per_recipient)
        stamps = [m.monotonic for m in messages]
        out["window_seconds"] = WINDOW_S
        out["peak_recipients_per_window"] = rolling_peak(stamps, [m.recipients for m in messages])
        out["peak_messages_per_window"] = rolling_peak(stamps)
        out["first_accepted_wall"] = messages[0].wall if messages else None
        out["last_accepted_wall"] = messages[-1].wall if messages else None
        return out

    def _paused_locked(self) -> bool:
        pause_after = self._knobs["pause_after"]
        return not self._knobs["sending_enabled"] or (
            pause_after is not None and len(self._messages) >= pause_after)

    # ----- SES operations (body/query in, response dict out, SesError on failure) -----
    def send_delay(self) -> float:
        """Seconds to hold a SendEmail answer."""
        base = float(self._knobs["latency_ms"])
        jitter = float(self._knobs["latency_jitter_ms"])
        if jitter:
            base += self._rng.uniform(-jitter, jitter)
        return max(base, 0.0) / 1000.0

    def send_email(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            kind, content, raw, from_address, addresses = self._parse_send(body)
        except SesError as e:
            with self._lock:
                self._send_requests += 1
                self._errors[e.code] += 1
            raise
        return self._admit_send(body, kind, content, raw, from_address, addresses)

    def _parse_send(self, body: dict[str, Any]
                    ) -> tuple[str, dict[str, Any], bytes | None, str, list[str]]:
        content = body.get("Content")
        if not isinstance(content, dict):
            raise SesError("BadRequestException", "Content is required.")
        kinds = [k for k in ("Simple", "Raw", "Template") if content.get(k) is not None]
        if len(kinds) != 1:
            raise SesError("BadRequestException", "Content must have exactly one of Simple, Raw, Template.")
        kind = kinds[0]
        destination = body.get("Destination")
        from_address = body.get("FromEmailAddress")
        raw: bytes | None = None
        if kind == "Raw":
            try:
                raw = base64.b64decode(content["Raw"]["Data"], validate=True)
            except (KeyError, TypeError, binascii.Error) as e:
                raise SesError("BadRequestException", "Raw.Data must be base64.") from e
        headers = BytesHeaderParser().parsebytes(raw) if raw is not None else None
        addresses = self._recipients(destination, headers)
        if not from_address and headers is not None:
            from_address = headers.get("From")
        if not from_address:
            raise SesError("BadRequestException", "Missing FromEmailAddress.")
        if not addresses:
            raise SesError("BadRequestException", "Missing final destination: no recipients.")
        return kind, content, raw, str(from_address), addresses

    def _admit_send(self, body: dict[str, Any], kind: str, content: dict[str, Any], raw: bytes | None,
                    from_address: str, addresses: list[str]) -> dict[str, Any]:
        destination = body.get("Destination")
        n = len(addresses)
        with self._lock:
            self._send_requests += 1
            knobs = self._knobs
            try:
                if self._paused_locked():
                    raise SesError("SendingPausedException", "Sending is paused for this account.")
                if knobs["error_rate"] and self._rng.random() < knobs["error_rate"]:
                    raise SesError("InternalFailure", "An internal error occurred.")
                if n > knobs["max_recipients_per_message"]:
                    limit = knobs["max_recipients_per_message"]
                    raise SesError("BadRequestException", f"Recipient count exceeds {limit}.")
                self._apply_rules_locked(addresses, from_address)
                if knobs["require_verified_sender"] and not self._sender_verified_locked(from_address):
                    raise SesError("MessageRejected",
                                   "Email address is not verified. The following identities failed "
                                   f"the check: {_normalize(from_address)}")
                if knobs["enforce_daily_quota"] and (knobs["sent_last_24_hours"] + self._accepted_recipients
                                                     + n > knobs["max_24_hour_send"]):
                    raise SesError("TooManyRequestsException", "Daily message quota exceeded.")
                now = time.monotonic()
                rate = knobs["max_send_rate"]
                if rate and self._send_window.current(now) + n > rate:
                    self._throttled += 1
                    raise SesError("TooManyRequestsException", "Maximum sending rate exceeded.")
            except SesError as e:
                self._errors[e.code] += 1
                raise
            self._send_window.add(now, n)
            seq = len(self._messages)
            message_id = f"{int(time.time() * 1000):016x}-{uuid.uuid4()}-000000"
            keep = knobs["record_content"]
            self._messages.append(AcceptedMessage(
                seq=seq, message_id=message_id, monotonic=now, wall=time.time(), recipients=n,
                addresses=tuple(addresses), from_address=from_address, destination=destination,
                reply_to=tuple(body.get("ReplyToAddresses") or ()),
                configuration_set=body.get("ConfigurationSetName"),
                email_tags=tuple(body.get("EmailTags") or ()), kind=kind,
                raw=raw if keep else None,
                simple=content.get("Simple") if keep else None,
                template=content.get("Template") if keep else None,
            ))
            self._accepted_recipients += n
            self._per_recipient.update(addresses)
        return {"MessageId": message_id}

    @staticmethod
    def _recipients(destination: Any, headers: Message | None) -> list[str]:
        if isinstance(destination, dict):
            listed: list[str] = []
            for key in ("ToAddresses", "CcAddresses", "BccAddresses"):
                listed.extend(destination.get(key) or ())
            return [_normalize(a) for a in listed]
        if headers is None:
            return []
        fields: list[str] = []
        for name in ("To", "Cc", "Bcc"):
            fields.extend(str(v) for v in headers.get_all(name, []))
        return [addr.lower() for _, addr in getaddresses(fields) if "@" in addr]

    def _apply_rules_locked(self, addresses: list[str], from_address: str) -> None:
        sender = _normalize(from_address)
        for rule in self._knobs["fail_with"]:
            times = rule.get("times")
            if times is not None and rule["fired"] >= times:
                continue
            hit = None
            pattern = rule.get("recipient")
            if pattern is not None:
                hit = next((a for a in addresses if fnmatch.fnmatchcase(a, pattern.lower())), None)
                if hit is None:
                    continue
            if rule.get("from") is not None and not fnmatch.fnmatchcase(sender, rule["from"].lower()):
                continue
            rule["fired"] += 1
            code = rule.get("code", "MessageRejected")
            message = rule.get("message") or (f"Message rejected for recipient {hit}." if hit
                                              else "Message rejected.")
            raise SesError(code, message, rule.get("status"))

    def _sender_verified_locked(self, from_address: str) -> bool:
        addr = _normalize(from_address)
        for key in (addr, addr.rpartition("@")[2]):
            identity = self._identities.get(key)
            if identity and identity.get("VerifiedForSendingStatus"):
                return True
        return False

    def _management_admit(self) -> None:
        with self._lock:
            self._mgmt_requests += 1
            rate = self._knobs["management_rate"]
            if rate:
                now = time.monotonic()
                if self._mgmt_window.current(now) + 1 > rate:
                    self._mgmt_throttled += 1
                    self._errors["TooManyRequestsException"] += 1
                    raise SesError("TooManyRequestsException", "Too Many Requests")
                self._mgmt_window.add(now, 1)

    def get_account(self) -> dict[str, Any]:
        self._management_admit()
        with self._lock:
            k = self._knobs
            reported = k["reported_max_send_rate"]
            if reported is None:
                reported = k["max_send_rate"] if k["max_send_rate"] is not None else 14.0
            return {
                "DedicatedIpAutoWarmupEnabled": False,
                "EnforcementStatus": k["enforcement_status"],
                "ProductionAccessEnabled": k["production_access_enabled"],
                "SendQuota": {"Max24HourSend": float(k["max_24_hour_send"]),
                              "MaxSendRate": float(reported),
                              "SentLast24Hours": float(k["sent_last_24_hours"] + self._accepted_recipients)},
                "SendingEnabled": not self._paused_locked(),
                "SuppressionAttributes": {"SuppressedReasons": list(SUPPRESSION_REASONS)},
            }

    def get_email_identity(self, identity: str) -> dict[str, Any]:
        self._management_admit()
        with self._lock:
            found = self._identities.get(identity.lower())
            if found is None:
                raise SesError("NotFoundException", f"Email identity {identity} does not exist.")
            return json.loads(json.dumps(found))

    def get_suppressed_destination(self, email: str) -> dict[str, Any]:
        self._management_admit()
        with self._lock:
            entry = self._suppressed.get(email.lower())
            if entry is None:
                raise SesError("NotFoundException", f"Email address {email} does not exist on your "
                                                    "suppression list.")
            return {"SuppressedDestination": {**entry, "Attributes": {}}}

    def list_suppressed_destinations(self, query: dict[str, list[str]]) -> dict[str, Any]:
        self._management_admit()
        page_size = MAX_PAGE_SIZE
        if "PageSize" in query:
            try:
                page_size = int(query["PageSize"][0])
            except ValueError as e:
                raise SesError("BadRequestException", "PageSize must be an integer.") from e
            if not 1 <= page_size <= MAX_PAGE_SIZE:
                raise SesError("BadRequestException", f"PageSize must be between 1 and {MAX_PAGE_SIZE}.")
        start = _parse_time(query["StartDate"][0]) if "StartDate" in query else None
        end = _parse_time(query["EndDate"][0]) if "EndDate" in query else None
        reasons = set(query.get("Reason", ()))
        after = ""
        if "NextToken" in query:
            try:
                decoded = base64.urlsafe_b64decode(query["NextToken"][0].encode("ascii")).decode("utf-8")
            except (binascii.Error, UnicodeError, ValueError) as e:
                raise SesError("InvalidNextTokenException", "The NextToken is not valid.") from e
            if not decoded.startswith(_TOKEN_PREFIX) or decoded == _TOKEN_PREFIX:
                raise SesError("InvalidNextTokenException", "The NextToken is not valid.")
            after = decoded[len(_TOKEN_PREFIX):]
        with self._lock:
            rows = sorted((k, v) for k, v in self._suppressed.items()
                          if k > after
                          and (start is None or v["LastUpdateTime"] >= start)
                          and (end is None or v["LastUpdateTime"] <= end)
                          and (not reasons or v["Reason"] in reasons))
        page = rows[:page_size]
        out: dict[str, Any] = {"SuppressedDestinationSummaries": [dict(v) for _, v in page]}
        if len(rows) > page_size:
            token = (_TOKEN_PREFIX + page[-1][0]).encode("utf-8")
            out["NextToken"] = base64.urlsafe_b64encode(token).decode("ascii")
        return out

    def put_suppressed_destination(self, body: dict[str, Any]) -> dict[str, Any]:
        self._management_admit()
        email, reason = body.get("EmailAddress"), body.get("Reason")
        if not isinstance(email, str) or not email or reason not in SUPPRESSION_REASONS:
            raise SesError("BadRequestException",
                           "EmailAddress and Reason (BOUNCE or COMPLAINT) are required.")
        self.suppress(email, reason)
        return {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    standin: SesStandin

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would do a reverse DNS lookup (getfqdn); not wanted here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, int(self.server_address[1])

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_connections(self) -> None:
        """End kept-alive connections so their handler threads finish."""
        with self._conns_lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


_SES_PREFIX = "/v2/email/"
_IDENTITY_PREFIX = "/v2/email/identities/"
_SUPPRESSION = "/v2/email/suppression/addresses"
_request_ids = iter(range(1, 1 << 62))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _reply(self, status: int, payload: dict[str, Any] | list[Any], error_code: str | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"x-amzn-RequestId: standin-{next(_request_ids):012d}\r\n")
        if error_code:
            head += f"x-amzn-ErrorType: {error_code}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        path = url.path
        standin = self.server.standin
        delay = 0.0
        try:
            body: dict[str, Any] = {}
            if raw_body:
                try:
                    body = json.loads(raw_body)
                except ValueError as e:
                    raise SesError("BadRequestException", "Request body is not valid JSON.") from e
                if not isinstance(body, dict):
                    raise SesError("BadRequestException", "Request body must be a JSON object.")
            if path == "/v2/email/outbound-emails" and method == "POST":
                delay = standin.send_delay()
                result = standin.send_email(body)
            elif path.startswith("/_standin/"):
                result = self._control(method, path, url.query, body)
            elif path == "/v2/email/account" and method == "GET":
                result = standin.get_account()
            elif path.startswith(_IDENTITY_PREFIX) and method == "GET":
                result = standin.get_email_identity(unquote(path[len(_IDENTITY_PREFIX):]))
            elif path == _SUPPRESSION and method == "GET":
                result = standin.list_suppressed_destinations(parse_qs(url.query, keep_blank_values=True))
            elif path == _SUPPRESSION and method == "PUT":
                result = standin.put_suppressed_destination(body)
            elif path.startswith(_SUPPRESSION + "/") and method == "GET":
                result = standin.get_suppressed_destination(unquote(path[len(_SUPPRESSION) + 1:]))
            else:
                raise SesError("UnknownOperationException", f"No operation for {method} {path}.")
        except SesError as e:
            if delay:
                time.sleep(delay)
            self._reply(e.status, {"message": e.message}, e.code)
            return
        if delay:
            time.sleep(delay)
        self._reply(200, result)

    def _control(self, method: str, path: str, query: str, body: dict[str, Any]) -> Any:
        standin = self.server.standin
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        flag = params.get
        try:
            if path == "/_standin/health" and method == "GET":
                return {"ok": True, "endpoint_url": standin.endpoint_url}
            if path == "/_standin/messages" and method == "GET":
                since = int(flag("since", "0"))
                content = flag("content", "1") not in ("0", "false")
                messages = [m.to_json(content) for m in standin.accepted(since)]
                return {"count": len(messages), "next": since + len(messages), "messages": messages}
            if path == "/_standin/stats" and method == "GET":
                return standin.stats(per_recipient=flag("per_recipient", "1") not in ("0", "false"))
            if path == "/_standin/config" and method == "GET":
                return standin.config()
            if path == "/_standin/config" and method == "POST":
                return standin.configure(**body)
            if path == "/_standin/reset" and method == "POST":
                standin.reset(full=bool(body.get("full", False)))
                return {"ok": True}
            if path == "/_standin/identities" and method == "POST":
                fields = dict(body)
                return standin.add_identity(str(fields.pop("identity")), **fields)
            if path == "/_standin/suppressed" and method == "POST":
                standin.suppress(str(body["email"]), body.get("reason", "BOUNCE"),
                                 body.get("last_update_time"))
                return {"ok": True}
        except (KeyError, TypeError, ValueError) as e:
            raise SesError("BadRequestException", f"Bad control request: {e}") from e
        raise SesError("UnknownOperationException", f"No control endpoint {method} {path}.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.standin.ses_server",
                                     description="Local SES v2 stand-in on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--max-send-rate", type=float, default=None, help="recipients per rolling second")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
    parser.add_argument("--management-rate", type=float, default=None, help="non-send requests per second")
    parser.add_argument("--pause-after", type=int, default=None)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--reject", action="append", default=[], metavar="GLOB",
                        help="recipient pattern answered with MessageRejected (repeatable)")
    parser.add_argument("--identity", action="append", default=[],
                        help="verified identity (domain or address) to serve (repeatable)")
    parser.add_argument("--no-record-content", action="store_true", help="keep only message metadata")
    args = parser.parse_args(argv)

    standin = SesStandin(
        args.port, max_send_rate=args.max_send_rate, latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms, management_rate=args.management_rate,
        pause_after=args.pause_after, error_rate=args.error_rate, seed=args.seed,
        fail_with=[{"recipient": r} for r in args.reject], record_content=not args.no_record_content)
    for identity in args.identity:
        standin.add_identity(identity)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin.start()
    print(f"READY {standin.endpoint_url}", flush=True)
    while not stopping.wait(0.5):
        pass
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
