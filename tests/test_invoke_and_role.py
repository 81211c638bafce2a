"""`blast invoke` against a stubbed Lambda client, and `role_arn` assumed for SES calls (moto STS)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from sender import wiring
from sender.cli import main
from sender.config import parse_config
from sender.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def stub_lambda(monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], *, function_error: bool = False,
                expect_payload: Any = ANY) -> Stubber:
    client = boto3.client("lambda", region_name="us-west-2")
    stub = Stubber(client)
    raw = json.dumps(body).encode()
    answer: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(raw), len(raw))}
    if function_error:
        answer["FunctionError"] = "Unhandled"
    stub.add_response("invoke", answer, {"FunctionName": "jada-blast-sender", "InvocationType": "RequestResponse",
                                         "Payload": expect_payload})
    stub.activate()
    monkeypatch.setattr(boto3, "client", lambda *a, **k: client)
    return stub


def test_invoke_prints_the_response_and_exits_zero_when_complete(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    response = {"blast_id": "b", "status": "complete", "dry_run": True, "counts": {"dry_run": 3}, "records": []}
    stub = stub_lambda(monkeypatch, response)
    code = main(["invoke", str(ROOT / "examples/regatta-invite.json"), "--function", "jada-blast-sender",
                 "--dry-run", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"dry_run": 3}
    stub.assert_no_pending_responses()


def test_invoke_sends_the_event_with_dry_run_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Recorder:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            seen.update(json.loads(kwargs["Payload"]))
            raw = json.dumps({"status": "complete", "counts": {}}).encode()
            return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(raw), len(raw))}

    monkeypatch.setattr(boto3, "client", lambda *a, **k: Recorder())
    assert main(["invoke", str(ROOT / "examples/regatta-invite.json"), "--function", "f", "--dry-run"]) == 0
    assert seen["dry_run"] is True and seen["blast_id"] == "spring-regatta-2027"


def test_invoke_exits_non_zero_on_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stub_lambda(monkeypatch, {"blast_id": "b", "status": "refused", "counts": {}, "records": [],
                              "error": {"code": "DkimNotVerified", "message": "DKIM status is PENDING"}})
    assert main(["invoke", str(ROOT / "examples/regatta-invite.json"), "--function", "jada-blast-sender"]) == 1
    assert "DkimNotVerified" in capsys.readouterr().out


@mock_aws
def test_role_arn_is_assumed_for_ses_calls() -> None:
    config = parse_config({"from_address": "a@example.com", "ses_region": "eu-west-1",
                           "role_arn": "arn:aws:iam::210987654321:role/ses-sender"})
    adapter = wiring.ses_adapter(config, Settings(region="us-west-2"))
    credentials = adapter._client._request_signer._credentials.get_frozen_credentials()
    assert credentials.access_key != os.environ["AWS_ACCESS_KEY_ID"]  # not the function's own credentials
    assert credentials.token  # temporary credentials from sts:AssumeRole
    assert adapter.region == "eu-west-1"


@mock_aws
def test_without_role_arn_the_functions_own_credentials_are_used() -> None:
    adapter = wiring.ses_adapter(parse_config({"from_address": "a@example.com"}), Settings(region="us-west-2"))
    credentials = adapter._client._request_signer._credentials.get_frozen_credentials()
    assert credentials.access_key == os.environ["AWS_ACCESS_KEY_ID"]
    assert adapter.region == "us-west-2"


def test_a_fan_out_worker_paces_management_calls_at_its_share_of_the_account() -> None:
    config = parse_config({"from_address": "a@example.com"})
    alone = wiring.ses_adapter(config, Settings(region="us-west-2", ses_management_rate=1.0))
    worker = wiring.ses_adapter(config, Settings(region="us-west-2", ses_management_rate=1.0), share=0.25)
    assert alone._pacer._rate == 1.0 and worker._pacer._rate == 0.25
