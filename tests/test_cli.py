"""The `blast` command as a user runs it."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from sender.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_offline_dry_run_writes_eml_files_and_index_with_no_aws_at_all(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "sender", "dry-run", "examples/regatta-invite.json", "--offline",
         "--config", "examples/sender-config.json", "--out", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    folder = tmp_path / "out" / "spring-regatta-2027"
    emls = sorted(folder.glob("*.eml"))
    assert len(emls) == 4  # 6 listed: one invalid address, one listed twice
    msg = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg["From"] == "JADA Sailing <admin@queenofsandiego.com>"
    assert msg.get_content_type() == "multipart/alternative"
    index = (folder / "index.html").read_text()
    assert "Nothing was sent" in index
    assert "Not rendered" in index and "not-an-address" in index  # what was skipped, and why
    # The recipient whose name holds markup is escaped in the preview (and in the message's HTML).
    assert "<script>alert(1)</script>" not in index
    assert "offline" in proc.stdout + proc.stderr


def test_dry_run_json_output_is_the_response(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dry-run", str(ROOT / "examples/regatta-invite.json"), "--offline", "--config",
                 str(ROOT / "examples/sender-config.json"), "--json", "--no-files"])
    response = json.loads(capsys.readouterr().out)
    assert code == 0
    assert response["status"] == "complete" and response["dry_run"] is True
    assert response["counts"]["dry_run"] == 4 and response["counts"]["invalid"] == 1


def test_bad_event_file_exits_non_zero_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"blast_id": "b", "template": "regatta-invite"}))
    code = main(["dry-run", str(bad), "--offline", "--json", "--no-files"])
    response = json.loads(capsys.readouterr().out)
    assert code == 1 and response["error"]["code"] == "InvalidEvent"
    assert "recipients" in response["error"]["message"]


def test_send_refuses_without_yes_off_a_terminal(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    assert main(["send", str(ROOT / "examples/regatta-invite.json")]) == 2
    assert "--yes" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["dry-run", "send", "invoke", "doctor", "smtp-password", "status",
                                     "resend-unknown"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert "usage: blast" in capsys.readouterr().out


def test_unreadable_inputs_are_usage_errors_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["dry-run", str(binary), "--offline"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["dry-run", str(tmp_path / "missing.json"), "--offline"]) == 2
    assert "cannot read" in capsys.readouterr().err
    event = str(ROOT / "examples/regatta-invite.json")
    assert main(["dry-run", event, "--offline", "--config", str(binary), "--no-files"]) == 2


def test_offline_never_reads_the_secret_even_when_one_is_named(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SENDER_SECRET_ID", "jada/sender")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")  # nothing listens there
    code = main(["dry-run", str(ROOT / "examples/regatta-invite.json"), "--offline", "--json", "--no-files"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["counts"]["dry_run"] == 4


def test_a_dry_run_that_cannot_write_its_files_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["dry-run", str(ROOT / "examples/regatta-invite.json"), "--offline", "--json",
                 "--out", str(blocker)])
    response = json.loads(capsys.readouterr().out)
    assert code == 1 and response["error"]["code"] == "OutputError"


def test_every_client_takes_aws_region_when_only_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from sender.config import SecretStore
    from sender.ledger import DynamoLedger
    from sender.queue import ChunkQueue

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert SecretStore()._client.meta.region_name == "eu-west-1"
    assert DynamoLedger("t", ttl_days=1)._client.meta.region_name == "eu-west-1"
    assert ChunkQueue("https://sqs.eu-west-1.amazonaws.com/1/q")._client.meta.region_name == "eu-west-1"
