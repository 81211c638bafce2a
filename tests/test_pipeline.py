"""The blast pipeline against an in-memory SES fake: every record status and every refusal."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path
from typing import Any

import pytest

from sender import wiring
from sender.errors import (
    AwsUnavailable,
    BlastFatal,
    DkimNotVerified,
    IdentityNotVerified,
    MessageRejected,
    OutcomeUnknown,
    QuotaExceeded,
    SendingDisabled,
    TemplateError,
    Throttled,
    TransientSesError,
)
from sender.models import parse_event
from sender.pipeline import Deps, run_blast
from sender.recipients import InlineSource
from sender.render import Renderer
from sender.throttle import RateLimiter
from tests.conftest import FakeSes, account, verified_identity

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = json.loads((ROOT / "examples" / "regatta-invite.json").read_text())


def event(recipients: list[Any], **extra: Any) -> Any:
    return parse_event(
        {"blast_id": "b-1", "template": "regatta-invite", "globals": EXAMPLE["globals"], "recipients": recipients,
         **extra}
    )


def people(n: int, domain: str = "example.com") -> list[dict[str, Any]]:
    return [{"email": f"user{i}@{domain}", "name": f"User {i}"} for i in range(n)]


def deps(ses: FakeSes, config: Any, templates: Path = ROOT / "templates", **extra: Any) -> Deps:
    extra.setdefault("limiter", RateLimiter(100_000))
    return Deps(config=config, renderer=Renderer(templates), open_recipients=wiring.open_recipients, ses=ses,  # type: ignore[arg-type]
                **extra)


def statuses(response: dict[str, Any]) -> dict[str, str]:
    return {r["email"]: r["status"] for r in response["records"]}


def test_happy_path_sends_each_recipient_once_with_records(fake_ses: FakeSes, sender_config: Any) -> None:
    response = run_blast(event(people(5)), deps(fake_ses, sender_config))
    assert response["status"] == "complete"
    assert response["counts"]["sent"] == 5 and sum(response["counts"].values()) == 5
    assert sorted(r["Destination"]["ToAddresses"][0] for r in fake_ses.sent) == sorted(
        p["email"] for p in people(5))
    record = response["records"][0]
    assert set(record) == {"blast_id", "email", "status", "message_id", "error_code", "reason", "attempts", "at"}
    assert record["message_id"].startswith("msg-") and record["attempts"] == 1


def test_send_request_carries_from_reply_to_configuration_set_and_tags(fake_ses: FakeSes, sender_config: Any) -> None:
    run_blast(event(people(1), tags={"campaign": "spring"}), deps(fake_ses, sender_config))
    request = fake_ses.sent[0]
    assert request["FromEmailAddress"] == "JADA Sailing <admin@queenofsandiego.com>"
    assert request["ConfigurationSetName"] == "jada-blasts"
    assert {"Name": "campaign", "Value": "spring"} in request["EmailTags"]
    assert {"Name": "blast_id", "Value": "b-1"} in request["EmailTags"]
    msg = email.message_from_bytes(request["Content"]["Raw"]["Data"], policy=policy.default)
    assert msg["Reply-To"] == "bookings@queenofsandiego.com"
    assert msg["To"].addresses[0].addr_spec == "user0@example.com"


def test_invalid_address_gets_an_invalid_record_and_no_send(fake_ses: FakeSes, sender_config: Any) -> None:
    response = run_blast(event([{"email": "nope"}, {"email": "ok@example.com"}, {"name": "no email"}, "str"]),
                         deps(fake_ses, sender_config))
    assert response["counts"] == {**response["counts"], "invalid": 3, "sent": 1}
    assert len(fake_ses.sent) == 1
    reasons = [r["reason"] for r in response["records"] if r["status"] == "invalid"]
    assert any("entry 1" in r for r in reasons) and any("entry 3" in r for r in reasons)


def test_same_address_twice_in_any_case_is_sent_once(fake_ses: FakeSes, sender_config: Any) -> None:
    response = run_blast(
        event([{"email": "Ann@Example.com"}, {"email": "ann@example.com"}, {"email": "ANN@EXAMPLE.COM"}]),
        deps(fake_ses, sender_config),
    )
    assert len(fake_ses.sent) == 1
    assert response["counts"]["sent"] == 1 and response["counts"]["duplicate"] == 2


@pytest.mark.parametrize("n", [3, 200])  # per-recipient lookups for a short list, one listing for a long one
def test_suppressed_recipients_are_skipped_with_the_reason(fake_ses: FakeSes, sender_config: Any, n: int) -> None:
    fake_ses.suppressed = {"user1@example.com": "BOUNCE", "user2@example.com": "COMPLAINT"}
    response = run_blast(event(people(n)), deps(fake_ses, sender_config))
    records = {r["email"]: r for r in response["records"]}
    assert records["user1@example.com"]["status"] == "suppressed"
    assert "BOUNCE" in records["user1@example.com"]["reason"]
    assert records["user2@example.com"]["error_code"] == "COMPLAINT"
    sent_to = {r["Destination"]["ToAddresses"][0] for r in fake_ses.sent}
    assert "user1@example.com" not in sent_to and "user2@example.com" not in sent_to
    assert len(sent_to) == n - 2
    expected = "per-recipient" if n == 3 else "snapshot"
    assert response["suppression"]["strategy"] == expected
    lookups = fake_ses.calls.count("GetSuppressedDestination") + fake_ses.calls.count("ListSuppressedDestinations")
    assert lookups == (n if n == 3 else 1)


def test_missing_variable_fails_that_recipient_alone(fake_ses: FakeSes, tmp_path: Path, sender_config: Any) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "subject.j2").write_text("Hi")
    (tmp_path / "t" / "text.j2").write_text("Seat {{ seat }}")
    ev = parse_event({"blast_id": "b", "template": "t", "recipients": [
        {"email": "a@example.com", "vars": {"seat": 1}}, {"email": "b@example.com"}]})
    response = run_blast(ev, deps(fake_ses, sender_config, templates=tmp_path))
    assert statuses(response) == {"a@example.com": "sent", "b@example.com": "invalid"}
    bad = next(r for r in response["records"] if r["status"] == "invalid")
    assert "seat" in bad["reason"] and bad["error_code"] == "MissingVariable"


def test_template_that_does_not_compile_refuses_before_any_call(fake_ses: FakeSes, tmp_path: Path,
                                                                  sender_config: Any) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "subject.j2").write_text("{{ broken ")
    (tmp_path / "t" / "text.j2").write_text("x")
    ev = parse_event({"blast_id": "b", "template": "t", "recipients": people(2)})
    with pytest.raises(TemplateError):
        run_blast(ev, deps(fake_ses, sender_config, templates=tmp_path))
    assert fake_ses.calls == [] and fake_ses.sent == []


def test_unverified_identity_refuses(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.identities = {"queenofsandiego.com": verified_identity(verified=False)}
    with pytest.raises(IdentityNotVerified, match=r"queenofsandiego\.com"):
        run_blast(event(people(2)), deps(fake_ses, sender_config))
    assert fake_ses.sent == []


def test_no_identity_at_all_refuses_naming_what_was_tried(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.identities = {}
    with pytest.raises(IdentityNotVerified) as info:
        run_blast(event(people(2)), deps(fake_ses, sender_config))
    assert "admin@queenofsandiego.com" in info.value.message and "us-west-2" in info.value.message


def test_verified_address_identity_is_enough_when_the_domain_is_unknown(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.identities = {"admin@queenofsandiego.com": dict(verified_identity(), IdentityType="EMAIL_ADDRESS")}
    assert run_blast(event(people(1)), deps(fake_ses, sender_config))["counts"]["sent"] == 1


def test_dkim_pending_refuses_unless_the_blast_accepts_it(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.identities = {"queenofsandiego.com": verified_identity(dkim="PENDING")}
    with pytest.raises(DkimNotVerified, match="PENDING"):
        run_blast(event(people(1)), deps(fake_ses, sender_config))
    assert fake_ses.sent == []
    response = run_blast(event(people(1), require_dkim=False), deps(fake_ses, sender_config))
    assert response["counts"]["sent"] == 1
    assert any("DKIM" in w for w in response["warnings"])


def test_sending_disabled_refuses(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.account = account(enabled=False)
    with pytest.raises(SendingDisabled):
        run_blast(event(people(1)), deps(fake_ses, sender_config))
    assert fake_ses.sent == []


def test_quota_short_refuses_and_unlimited_quota_does_not(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.account = account(max24=200, sent=198)
    with pytest.raises(QuotaExceeded, match="only 2"):
        run_blast(event(people(3)), deps(fake_ses, sender_config))
    assert fake_ses.sent == []
    fake_ses.account = account(max24=-1, sent=10**9)
    assert run_blast(event(people(3)), deps(fake_ses, sender_config))["counts"]["sent"] == 3


def test_sandbox_is_noted_in_the_response(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.account = account(production=False)
    response = run_blast(event(people(1)), deps(fake_ses, sender_config))
    assert response["sandbox"] is True
    assert any("sandbox" in w for w in response["warnings"])


def test_throttled_then_succeeds_is_sent_once(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.errors["user0@example.com"] = [
        Throttled("Maximum sending rate exceeded.", code="TooManyRequestsException"),
        TransientSesError("boom", code="InternalFailure"),
    ]
    limiter = RateLimiter(100_000)
    response = run_blast(event(people(2)), deps(fake_ses, sender_config, limiter=limiter))
    assert response["counts"]["sent"] == 2
    record = next(r for r in response["records"] if r["email"] == "user0@example.com")
    assert record["attempts"] == 3
    assert limiter.throttles == 1
    assert [r["Destination"]["ToAddresses"][0] for r in fake_ses.sent].count("user0@example.com") == 1


def test_permanent_reject_fails_that_recipient_with_the_ses_code(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.errors["user1@example.com"] = [MessageRejected("Email address is not verified.", code="MessageRejected")]
    response = run_blast(event(people(3)), deps(fake_ses, sender_config))
    record = next(r for r in response["records"] if r["email"] == "user1@example.com")
    assert record["status"] == "failed" and record["error_code"] == "MessageRejected" and record["attempts"] == 1
    assert response["counts"]["sent"] == 2


def test_no_answer_from_ses_is_unknown_and_not_retried(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.errors["user0@example.com"] = [OutcomeUnknown("Read timeout", code="ReadTimeoutError")]
    response = run_blast(event(people(1)), deps(fake_ses, sender_config))
    assert statuses(response) == {"user0@example.com": "unknown"}
    assert fake_ses.send_calls == 1


def test_sending_paused_mid_blast_stops_further_sends(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.fail_all_after = (10, BlastFatal("Sending is paused for this account.", code="SendingPausedException"))
    response = run_blast(event(people(60)), deps(fake_ses, sender_config, send_concurrency=4))
    assert len(fake_ses.sent) == 10
    # Calls in flight when the pause landed may also be refused, but nothing after that is attempted.
    assert fake_ses.send_calls <= 10 + 2 * 4
    assert response["counts"]["sent"] == 10 and response["counts"]["failed"] == 50
    assert response["error"]["code"] == "SendingPausedException"
    not_attempted = [r for r in response["records"] if r["reason"] and r["reason"].startswith("not attempted")]
    assert len(not_attempted) >= 50 - 2 * 4


def test_dry_run_sends_nothing_and_records_dry_run(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.suppressed = {"user1@example.com": "BOUNCE"}
    response = run_blast(event(people(3), dry_run=True), deps(fake_ses, sender_config))
    assert fake_ses.send_calls == 0
    assert response["dry_run"] is True
    assert statuses(response) == {
        "user0@example.com": "dry_run", "user1@example.com": "suppressed", "user2@example.com": "dry_run"}
    assert "GetAccount" in fake_ses.calls  # preflight still ran


def test_preflight_action_renders_one_sample_and_sends_nothing(fake_ses: FakeSes, sender_config: Any) -> None:
    response = run_blast(event(people(3), action="preflight"), deps(fake_ses, sender_config))
    assert fake_ses.send_calls == 0
    assert response["sample"]["email"] == "user0@example.com"
    assert response["preflight"]["identity"] == "queenofsandiego.com"


def test_time_running_out_returns_partial_with_how_to_continue(fake_ses: FakeSes, sender_config: Any) -> None:
    read = [0]
    source = wiring.open_recipients

    def counting(ev: Any) -> Any:
        inner = source(ev)

        class Counting:
            def entries(self) -> Any:
                for entry in inner.entries():
                    read[0] += 1
                    yield entry

            def count(self) -> int | None:
                return inner.count()

        return Counting()

    # After 3 entries, 20 s are left: under the 30 s margin (nothing more is claimed), over the 15 s floor
    # (what was queued still goes out).
    d = deps(fake_ses, sender_config, remaining_ms=lambda: 60_000 if read[0] < 3 else 20_000)
    d.open_recipients = counting
    response = run_blast(event(people(10)), d)
    assert response["status"] == "partial"
    assert response["counts"]["sent"] == 3 and response["remaining"] == 7
    assert "invoke the same event again" in response["continue"]


def test_response_keeps_at_most_1000_records_but_counts_all(fake_ses: FakeSes, sender_config: Any) -> None:
    response = run_blast(event(people(1100), dry_run=True), deps(fake_ses, sender_config))
    assert len(response["records"]) == 1000
    assert response["counts"]["dry_run"] == 1100 and response["records_truncated"] is True


def test_one_structured_log_line_per_record(fake_ses: FakeSes, sender_config: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    run_blast(event([*people(3), {"email": "bad"}]), deps(fake_ses, sender_config))
    records = [r.record for r in caplog.records if r.getMessage() == "delivery record"]  # type: ignore[attr-defined]
    assert sorted(r["status"] for r in records) == ["invalid", "sent", "sent", "sent"]


def test_suppression_lookup_failing_for_one_recipient_fails_it_unsent(fake_ses: FakeSes, sender_config: Any) -> None:
    original = fake_ses.get_suppressed_destination

    def flaky(email: str) -> Any:
        if email == "user1@example.com":
            raise Throttled("Too Many Requests", code="TooManyRequestsException")
        return original(email)

    fake_ses.get_suppressed_destination = flaky  # type: ignore[method-assign]
    response = run_blast(event(people(3)), deps(fake_ses, sender_config))
    record = next(r for r in response["records"] if r["email"] == "user1@example.com")
    assert record["status"] == "failed" and record["error_code"] == "TooManyRequestsException"
    assert response["counts"]["sent"] == 2
    assert "user1@example.com" not in {r["Destination"]["ToAddresses"][0] for r in fake_ses.sent}


def test_preflight_call_failing_past_retries_refuses_as_aws_error(fake_ses: FakeSes, sender_config: Any) -> None:
    def denied() -> Any:
        raise BlastFatal("not authorized to perform ses:GetAccount", code="AccessDeniedException")

    fake_ses.get_account = denied  # type: ignore[method-assign]
    with pytest.raises(AwsUnavailable, match="AccessDeniedException"):
        run_blast(event(people(1)), deps(fake_ses, sender_config))
    assert fake_ses.send_calls == 0


def test_list_breaking_mid_way_stops_cleanly_as_partial(fake_ses: FakeSes, sender_config: Any) -> None:
    class Broken:
        def entries(self) -> Any:
            yield from InlineSource(people(2)).entries()
            raise OSError("connection reset while reading the list")

        def count(self) -> None:
            return None

    d = deps(fake_ses, sender_config)
    d.open_recipients = lambda _event: Broken()  # type: ignore[assignment,return-value]
    response = run_blast(event(people(1)), d)
    assert response["status"] == "partial" and response["counts"]["sent"] == 2
    assert response["error"]["code"] == "RecipientsUnreadable"


def test_progress_is_reported_at_intervals_with_counts(fake_ses: FakeSes, sender_config: Any) -> None:
    seen: list[Any] = []
    run_blast(event(people(5)), deps(fake_ses, sender_config, progress=seen.append, progress_interval=0.0))
    assert [p.done for p in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].counts["sent"] == 5 and seen[-1].total == 5


def test_lambda_progress_line_is_a_structured_log(caplog: pytest.LogCaptureFixture) -> None:
    from sender.handler import _progress_line
    from sender.pipeline import Progress

    caplog.set_level("INFO")
    _progress_line(Progress(done=3, total=10, counts={"sent": 3}, elapsed=1.5, rate=2.0))
    record = next(r for r in caplog.records if r.getMessage() == "progress")
    assert record.done == 3 and record.total == 10  # type: ignore[attr-defined]


def test_a_later_valid_listing_of_an_address_whose_first_was_invalid_is_still_sent(
    fake_ses: FakeSes, tmp_path: Path, sender_config: Any
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "subject.j2").write_text("Hi")
    (tmp_path / "t" / "text.j2").write_text("Boat {{ boat }}")
    ev = parse_event({"blast_id": "b", "template": "t", "recipients": [
        {"email": "ann@example.com"}, {"email": "Ann@Example.com", "vars": {"boat": "Jada"}},
        {"email": "ann@example.com", "vars": {"boat": "Jada"}}]})
    response = run_blast(ev, deps(fake_ses, sender_config, templates=tmp_path))
    assert [r["status"] for r in response["records"]] == ["invalid", "duplicate", "sent"]
    assert response["counts"]["invalid"] == 1 and response["counts"]["sent"] == 1
    assert len(fake_ses.sent) == 1


class MemoryLedger:
    """A durable ledger in memory, with scripted failures."""

    durable = True

    def __init__(self, *, started: bool = False, settle_failures: int = 0, claim_error: Exception | None = None):
        from sender.ledger import Claim, ClaimResult

        self._claim = Claim(ClaimResult.CLAIMED)
        self.started = started
        self.settle_failures = settle_failures
        self.claim_error = claim_error
        self.settled: list[Any] = []
        self.noted: list[Any] = []

    def claim(self, blast_id: str, key: str, *, resend_unknown: bool = False) -> Any:
        if self.claim_error is not None:
            raise self.claim_error
        return self._claim

    def settle(self, record: Any) -> None:
        from sender.ledger import LedgerError

        if self.settle_failures:
            self.settle_failures -= 1
            raise LedgerError("throttled")
        self.settled.append(record)

    def note(self, record: Any) -> None:
        self.noted.append(record)

    def started_before(self, blast_id: str) -> bool:
        return self.started

    def mark_started(self, blast_id: str) -> None:
        self.started = True


def test_a_sent_outcome_is_retried_into_the_ledger_rather_than_left_in_doubt(
    fake_ses: FakeSes, sender_config: Any
) -> None:
    ledger = MemoryLedger(settle_failures=2)
    response = run_blast(event(people(1)), deps(fake_ses, sender_config, ledger=ledger))
    assert response["counts"]["sent"] == 1 and "error" not in response
    assert [r.status.value for r in ledger.settled] == ["sent"]


def test_a_ledger_error_on_a_claim_stops_this_run_without_stopping_the_fleet(
    fake_ses: FakeSes, sender_config: Any
) -> None:
    from sender.ledger import LedgerError

    announced: list[Any] = []
    ledger = MemoryLedger(claim_error=LedgerError("the delivery table kept throttling"))
    response = run_blast(event(people(3)), deps(fake_ses, sender_config, ledger=ledger,
                                                on_fatal=lambda *a: announced.append(a)))
    assert fake_ses.send_calls == 0 and response["error"]["code"] == "LedgerUnavailable"
    assert announced == []  # a ledger blip is this run's problem: other workers go on
    assert ledger.started  # the run got past its checks


def test_a_resumed_blast_over_the_quota_left_is_warned_not_refused(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.account = account(max24=100, sent=98)
    with pytest.raises(QuotaExceeded):
        run_blast(event(people(3)), deps(fake_ses, sender_config, ledger=MemoryLedger(started=False)))
    response = run_blast(event(people(3)), deps(fake_ses, sender_config, ledger=MemoryLedger(started=True)))
    assert response["status"] == "complete"
    assert any("resumes a blast" in w for w in response["warnings"])


def test_recipients_not_attempted_after_a_stop_are_stored_as_failed(fake_ses: FakeSes, sender_config: Any) -> None:
    fake_ses.fail_all_after = (2, BlastFatal("paused", code="SendingPausedException"))
    ledger = MemoryLedger()
    response = run_blast(event(people(20)), deps(fake_ses, sender_config, ledger=ledger, send_concurrency=1))
    failed = response["counts"]["failed"]
    stored = {r.email for r in ledger.noted + ledger.settled if r.status.value == "failed"}
    assert failed >= 17 and len(stored) == failed  # every failed one is in the ledger: status and re-runs see it
