"""Throughput without loss: the fast MIME path builds the same message the stock compat32 path did, the
pipeline streams its recipients, and a real blast against the SES v2 stand-in never exceeds the rate and
loses nothing when SES throttles. No timed assertions here: `make bench` measures speed.
"""

from __future__ import annotations

import email
import random
import string
from collections.abc import Iterator
from email import policy
from email.charset import QP, Charset
from email.errors import HeaderParseError
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

from sender.config import parse_config
from sender.models import BadRecipient, Recipient, parse_event
from sender.pipeline import INLINE_RECORDS, run_blast
from sender.recipients import validate_entry
from sender.render import _POLICY, Rendered, build_mime
from sender.ses import SesAdapter
from sender.settings import Settings
from sender.throttle import Pacer
from sender.wiring import build_deps
from tests.standin.ses_server import SesStandin

ROOT = Path(__file__).resolve().parent.parent
GLOBALS = {
    "regatta": "the Spring Regatta", "event_date": "Saturday 6 March 2027", "boarding_time": "9:30",
    "dock": "Harbor Island West Marina, dock C", "boat": "Jada",
    "booking_url": "https://queenofsandiego.com/regatta/spring-2027", "contact_email": "bookings@queenofsandiego.com",
}


# --- the fast MIME path -------------------------------------------------------------------------------
def _stock_mime(rendered: Rendered) -> email.message.Message:
    """What build_mime produced with the stock compat32 classes (Python's QP encoder, default folding)."""
    utf8_qp = Charset("utf-8")
    utf8_qp.body_encoding = QP
    text = MIMEText(rendered.text, "plain", utf8_qp)  # type: ignore[arg-type]
    if rendered.html is None:
        return text
    msg = MIMEMultipart("alternative")
    msg.attach(text)
    msg.attach(MIMEText(rendered.html, "html", utf8_qp))  # type: ignore[arg-type]
    return msg


def _parts(raw: bytes) -> list[tuple[str, str]]:
    msg = email.message_from_bytes(raw, policy=policy.default)
    leaves = list(msg.walk())[1:] if msg.is_multipart() else [msg]
    return [(part.get_content_type(), part.get_content()) for part in leaves]  # type: ignore[attr-defined]


BODIES = [
    "Ahoy Ann,\n\nSee you on the water.\n",
    "Caf\u00e9 cr\u00e8me \u2014 \u00fcber \u65e5\u672c\nline two  \nA line ending in a tab\t\n",
    "x" * 300 + "\n" + "= signs =3D and ==\n" + "trailing spaces   \n.\nFrom the dock\n",
    "windows\r\nline\r\nends\rand a lone CR\n",
    "no final newline",
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("with_html", [True, False])
def test_fast_mime_decodes_to_the_same_parts_as_the_stock_classes(body: str, with_html: bool) -> None:
    rendered = Rendered(subject="Hi", text=body, html=f"<p>{body}</p>" if with_html else None)
    fast = build_mime(from_name="JADA", from_email="admin@queenofsandiego.com", to_name="Ann",
                      to_email="ann@example.com", rendered=rendered)
    assert _parts(fast) == _parts(_stock_mime(rendered).as_bytes())


def test_fast_mime_lines_stay_within_the_rfc_limit_and_the_boundary_never_occurs_in_a_part() -> None:
    rendered = Rendered(subject="Hi", text="=_" * 500 + "\n", html="<p>" + "=_ab" * 400 + "</p>")
    raw = build_mime(from_name=None, from_email="a@example.com", to_name=None, to_email="b@example.com",
                     rendered=rendered)
    assert max(len(line) for line in raw.split(b"\n")) <= 78
    msg = email.message_from_bytes(raw, policy=policy.default)
    boundary = msg.get_boundary()
    assert boundary and boundary.startswith("=_")
    body = raw.split(b"\n\n", 1)[1]
    assert body.count(f"--{boundary}".encode()) == 3  # two parts and the closing line, nothing inside a part


def test_fast_header_fold_is_byte_for_byte_compat32_folding() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "  \t<>@.,;:\"'()=?_-"
    names = ["From", "To", "Subject", "Reply-To", "List-Unsubscribe", "Content-Type"]
    stock = policy.compat32
    for _ in range(3000):
        name = rng.choice(names)
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 110)))
        assert _POLICY.fold_binary(name, value) == stock.fold_binary(name, value), value
    for value in ("Caf\u00e9 \u2014 long " * 8, "a\r\n folded", Header("Caf\u00e9", "utf-8")):
        assert _POLICY.fold_binary("Subject", value) == stock.fold_binary("Subject", value)
    for fast in (_POLICY, stock):  # a value smuggling in a header is refused on both paths
        with pytest.raises(HeaderParseError):
            fast.fold_binary("Subject", "a\r\nBcc: x@example.com")


# --- streaming ------------------------------------------------------------------------------------------
class _CountingSource:
    """A list that can only be read forwards, counting what it has handed out."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.yielded = 0

    def entries(self) -> Iterator[Recipient | BadRecipient]:
        for i in range(self.n):
            self.yielded += 1
            yield validate_entry({"email": f"member{i}@example.com", "name": f"Member {i}"}, i + 1)

    def count(self) -> int | None:
        return None


class _LagWriter:
    """A MessageWriter that notes how far the source ran ahead of each rendered message."""

    def __init__(self, source: _CountingSource) -> None:
        self.source = source
        self.written = 0
        self.max_ahead = 0

    def write(self, recipient: Recipient, raw: bytes, rendered: Rendered) -> None:
        self.written += 1
        self.max_ahead = max(self.max_ahead, self.source.yielded - self.written)

    def finish(self, response: dict[str, Any]) -> None:
        pass


def test_recipients_are_streamed_and_the_response_keeps_counts_beyond_the_inline_records(sender_config: Any) -> None:
    source = _CountingSource(INLINE_RECORDS + 500)
    writer = _LagWriter(source)
    deps = build_deps(Settings(), config=sender_config, offline=True, writer=writer)
    deps.open_recipients = lambda event: source
    event = parse_event({"blast_id": "stream", "template": "regatta-invite", "globals": GLOBALS,
                         "recipients_uri": "s3://lists-bucket/members.csv", "dry_run": True})
    response = run_blast(event, deps)
    assert response["counts"]["dry_run"] == source.n == writer.written
    assert writer.max_ahead == 0  # each entry is rendered before the next one is read: nothing holds the list
    assert len(response["records"]) == INLINE_RECORDS and response["records_truncated"] is True


# --- against the SES v2 stand-in --------------------------------------------------------------------------
FROM = "JADA Sailing <admin@queenofsandiego.com>"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandin]:
    with SesStandin(record_content=False) as server:
        server.add_identity("queenofsandiego.com")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", server.endpoint_url)
        yield server


def _blast(n: int, *, blast_id: str) -> dict[str, Any]:
    # Management calls unpaced (Pacer(rate=0)): the stand-in does not limit them and the test stays fast.
    ses = SesAdapter(region="us-west-2", pacer=Pacer(rate=0), pool_size=16)
    deps = build_deps(Settings(region="us-west-2"), config=parse_config({"from_address": FROM}), ses=ses)
    recipients = [{"email": f"crew{i}@example.com", "name": f"Crew {i}"} for i in range(n)]
    event = parse_event({"blast_id": blast_id, "template": "regatta-invite", "globals": GLOBALS,
                         "recipients": recipients})
    return run_blast(event, deps)


def _sent_exactly_once(standin: SesStandin, n: int) -> None:
    stats = standin.stats()
    assert stats["duplicates"] == []
    assert stats["per_recipient"] == {f"crew{i}@example.com": 1 for i in range(n)}


@pytest.mark.integration
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_blast_never_puts_more_than_the_account_rate_into_any_rolling_second(standin: SesStandin) -> None:
    # SES reports 50/s and does not enforce it here, so the stand-in's peak shows what we actually sent.
    standin.configure(reported_max_send_rate=50, max_send_rate=None, latency_ms=20)
    response = _blast(100, blast_id="paced")
    assert response["counts"]["sent"] == 100 and response["status"] == "complete"
    assert standin.stats()["peak_recipients_per_window"] <= 50
    assert response["rate"]["limit"] <= 50
    _sent_exactly_once(standin, 100)


@pytest.mark.integration
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_blast_loses_nothing_when_ses_throttles_below_the_reported_rate(standin: SesStandin) -> None:
    # Another sender on the account: SES reports 60/s but lets this blast have only 25/s.
    standin.configure(reported_max_send_rate=60, max_send_rate=25, latency_ms=20)
    response = _blast(90, blast_id="throttled")
    stats = standin.stats()
    assert stats["throttled"] > 0  # the limiter's first second alone is over 25
    assert response["rate"]["throttles"] == stats["throttled"]  # every 429 slowed the limiter down
    assert response["counts"]["sent"] == 90 and response["counts"]["failed"] == 0
    assert any(r["attempts"] > 1 for r in response["records"])
    _sent_exactly_once(standin, 90)
