"""A real crash: `blast send` in its own process, killed with SIGKILL mid-blast, then resumed.

SES is the stand-in (with latency, so sends are in flight at the kill) and DynamoDB a moto server, both on
127.0.0.1 and reached by both processes through AWS_ENDPOINT_URL_*. After the resume every recipient has
exactly one accepted message or is `unknown`, and there are no more `unknown` than claims in flight at the
kill (at most SEND_CONCURRENCY, because a recipient is claimed only right before its send).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from sender.config import parse_config
from sender.ledger import is_meta_key
from sender.models import parse_event
from sender.pipeline import run_blast
from sender.settings import Settings
from sender.wiring import build_deps
from tests.conftest import SECRET
from tests.standin.ses_server import SesStandin
from tests.test_ledger import create_table

pytestmark = [pytest.mark.integration, pytest.mark.allow_hosts(["127.0.0.1"])]

ROOT = Path(__file__).resolve().parent.parent
TABLE = "deliveries"
CONCURRENCY = 4
RECIPIENTS = 60
GLOBALS = {"regatta": "Spring", "event_date": "1 March", "boarding_time": "9:30", "dock": "C", "boat": "Jada",
           "booking_url": "https://x.example", "contact_email": "b@example.com"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    client = boto3.client("dynamodb")
    create_table(client, TABLE)
    yield client
    server.stop()


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandin]:
    with SesStandin(max_send_rate=1000, latency_ms=120) as ses:
        ses.add_identity("queenofsandiego.com")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", ses.endpoint_url)
        yield ses


def items(client: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": TABLE}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            if is_meta_key(item["email"]["S"]):
                continue  # blast-level items (#started...), not recipients
            out[item["email"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_blast_killed_mid_send_resumes_with_nothing_sent_twice(
    dynamodb: Any, standin: SesStandin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emails = [f"crew{i:02d}@example.com" for i in range(RECIPIENTS)]
    raw = {"blast_id": "crash-1", "template": "regatta-invite", "globals": GLOBALS,
           "recipients": [{"email": e} for e in emails]}
    (tmp_path / "event.json").write_text(json.dumps(raw))
    (tmp_path / "config.json").write_text(json.dumps(SECRET))
    monkeypatch.setenv("DELIVERY_TABLE", TABLE)
    monkeypatch.setenv("SEND_CONCURRENCY", str(CONCURRENCY))
    monkeypatch.setenv("SES_MANAGEMENT_RATE", "1000")

    with (tmp_path / "stderr").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sender", "send", str(tmp_path / "event.json"),
             "--config", str(tmp_path / "config.json"), "--yes", "--json"],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=stderr,
        )
        deadline = time.monotonic() + 8
        while standin.stats(per_recipient=False)["accepted"] < 12:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
            assert time.monotonic() < deadline, "the blast never got going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    assert proc.returncode == -signal.SIGKILL

    at_kill = items(dynamodb)
    in_flight = {key for key, item in at_kill.items() if item["status"] == "sending"}
    accepted_at_kill = standin.stats(per_recipient=False)["accepted"]
    assert accepted_at_kill < RECIPIENTS, "killed too late to test anything"
    assert 1 <= len(in_flight) <= CONCURRENCY  # only sends in flight hold a claim

    # The resume: the same event again (with the same environment), in this process.
    deps = build_deps(Settings.from_env(), config=parse_config(SECRET))
    response = run_blast(parse_event(raw), deps)
    assert response["status"] == "complete"
    status = {r["email"]: r["status"] for r in response["records"]}
    unknown = {e for e, s in status.items() if s == "unknown"}
    assert unknown == in_flight  # exactly the claims in flight at the kill, never re-sent
    assert set(status.values()) <= {"sent", "duplicate", "unknown"}

    counts = standin.stats()["per_recipient"]
    for email in emails:
        if email in unknown:
            assert counts.get(email, 0) <= 1  # maybe SES got it before the kill, maybe not: never twice
        else:
            assert counts.get(email) == 1, email
    assert len(unknown) <= CONCURRENCY
