"""Static checks of infra/terraform: it parses, and it says what CONTRACT and the issues require.

No terraform binary and no provider are needed (CI has neither): python-hcl2 parses each file and the
tests read the parsed blocks. checkov runs separately (`make tf-check`).
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[1]
TF_DIR = ROOT / "infra" / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))


def _unquote(value: Any) -> Any:
    """python-hcl2 >= 5 keeps the quotes of string literals and labels; older versions drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return _unquote(value)


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        result: dict[str, Any] = _clean(hcl2.load(f))
    return result


def blocks(kind: str, type_: str | None = None) -> dict[str, Any]:
    """Every `kind` block of the configuration, by `type.name` (or by name for variable/output)."""
    found: dict[str, Any] = {}
    for path in TF_FILES:
        for entry in parsed(path).get(kind, []):
            for label, body in entry.items():
                if type_ is None:
                    found[label] = body
                elif label == type_:
                    found.update(body)
    return found


def addresses(kind: str) -> set[str]:
    """`type.name` of every resource or data block."""
    return {
        f"{type_}.{name}"
        for path in TF_FILES
        for entry in parsed(path).get(kind, [])
        for type_, named in entry.items()
        for name in named
    }


def resource(type_: str, name: str) -> dict[str, Any]:
    found = blocks("resource", type_)
    assert name in found, f"resource {type_}.{name} is missing"
    body: dict[str, Any] = found[name]
    return body


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    assert value, f"block {name} is missing"
    inner: dict[str, Any] = value[0] if isinstance(value, list) else value
    return inner


def source_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in TF_FILES)


# --- every file parses ----------------------------------------------------------------------------
def test_the_configuration_has_the_expected_files() -> None:
    names = {path.name for path in TF_FILES}
    expected = {"versions.tf", "variables.tf", "lambda.tf", "iam.tf", "secrets.tf", "dynamodb.tf"}
    expected |= {"queue.tf", "schedules.tf", "alarms.tf", "outputs.tf"}
    assert expected <= names
    assert (TF_DIR / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parsed(path), dict)


def test_no_two_blocks_share_an_address() -> None:
    """What `terraform validate` would refuse first: the same type and name declared twice across files."""
    seen: dict[str, str] = {}
    for path in TF_FILES:
        for kind in ("resource", "data", "variable", "output"):
            for entry in parsed(path).get(kind, []):
                for label, body in entry.items():
                    names = (
                        [f"{kind}.{label}.{name}" for name in body]
                        if kind in ("resource", "data")
                        else [f"{kind}.{label}"]
                    )
                    for address in names:
                        assert address not in seen, f"{address} is declared in {seen[address]} and {path.name}"
                        seen[address] = path.name


def _code_without_comments() -> str:
    lines = source_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("#", "//")))


def test_every_reference_resolves_and_every_variable_is_used() -> None:
    """The rest of what `terraform validate` would catch without a provider: dangling references."""
    code = _code_without_comments()
    variables = set(blocks("variable"))
    locals_ = {name for path in TF_FILES for entry in parsed(path).get("locals", []) for name in entry}
    resources, datas = addresses("resource"), addresses("data")
    assert set(re.findall(r"\bvar\.(\w+)", code)) <= variables
    assert set(re.findall(r"\blocal\.(\w+)", code)) <= locals_
    assert set(re.findall(r"\bdata\.(aws_\w+\.\w+)", code)) <= datas
    referenced = set(re.findall(r"(?<![\w.\"])(aws_\w+\.\w+)", code))
    assert referenced <= resources, referenced - resources
    unused = {v for v in variables if f"var.{v}" not in code}
    assert not unused, f"declared but never used: {unused}"


def test_the_tfvars_example_parses_and_sets_only_declared_variables() -> None:
    example = {k: v for k, v in parsed(TF_DIR / "terraform.tfvars.example").items() if not k.startswith("__")}
    assert set(example) <= set(blocks("variable")), set(example) - set(blocks("variable"))
    required = {name for name, body in blocks("variable").items() if "default" not in body}
    assert required <= set(example), f"the example leaves required variables unset: {required - set(example)}"


# --- conventions ----------------------------------------------------------------------------------
def test_versions_pin_terraform_and_the_aws_provider_to_ranges() -> None:
    settings = parsed(TF_DIR / "versions.tf")["terraform"][0]
    assert re.search(r">=\s*1\.\d+.*<", settings["required_version"])
    aws = settings["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r">=\s*[56]\.\d+,\s*<\s*[67]\.0", aws["version"]), aws["version"]


def test_every_variable_has_a_type_and_a_description() -> None:
    variables = blocks("variable")
    assert variables
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(str(body.get("description", ""))) > 10, f"variable {name} has no description"


def test_every_output_has_a_description() -> None:
    for name, body in blocks("output").items():
        assert body.get("description"), f"output {name} has no description"


def test_every_checkov_skip_gives_its_reason() -> None:
    skips = re.findall(r"#\s*checkov:skip=([^\n]*)", source_text())
    assert skips
    for skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+:.{30,}", skip), f"checkov skip without a real reason: {skip}"


# --- the function -------------------------------------------------------------------------------------
def _package_defaults() -> tuple[str, str]:
    spec = importlib.util.spec_from_file_location("package_script", ROOT / "scripts" / "package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parse_args([])
    return args.runtime, args.arch


def test_function_runs_the_contract_handler_on_the_runtime_and_architecture_the_package_defaults_to() -> None:
    function = resource("aws_lambda_function", "this")
    variables = blocks("variable")
    assert function["handler"] == "sender.handler.lambda_handler"
    assert function["runtime"] == "${var.runtime}"
    assert function["architectures"] == ["${var.architecture}"]
    assert (variables["runtime"]["default"], variables["architecture"]["default"]) == _package_defaults()
    assert variables["runtime"]["default"] in {"python3.12", "python3.13"}


def test_function_has_timeout_memory_and_reserved_concurrency_from_variables() -> None:
    function = resource("aws_lambda_function", "this")
    assert function["timeout"] == "${var.function_timeout}"
    assert function["memory_size"] == "${var.memory_size}"
    assert function["reserved_concurrent_executions"] == "${var.reserved_concurrency}"


def _environment_keys() -> set[str]:
    text = (TF_DIR / "lambda.tf").read_text(encoding="utf-8")
    local = text[text.index("function_environment") : text.index('resource "aws_lambda_function"')]
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", local))


def test_function_environment_is_the_contracts() -> None:
    keys = _environment_keys()
    required = {"SENDER_SECRET_ID", "DELIVERY_TABLE", "BLAST_QUEUE_URL", "CHUNK_SIZE", "WORKER_CONCURRENCY"}
    required |= {"MAX_SEND_RATE", "SEND_CONCURRENCY"}
    required |= {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}
    assert required <= keys, required - keys


def test_every_environment_variable_is_read_by_the_code_or_powertools() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "sender").glob("*.py"))
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}
    unread = {key for key in _environment_keys() - powertools if f'"{key}"' not in code}
    assert not unread, f"set by Terraform but read nowhere in sender/: {unread}"


def test_log_group_is_explicit_with_retention_and_is_the_functions() -> None:
    group = resource("aws_cloudwatch_log_group", "lambda")
    assert group["retention_in_days"] == "${var.log_retention_days}"
    assert group["kms_key_id"]
    logging = block(resource("aws_lambda_function", "this"), "logging_config")
    assert logging["log_group"] == "${aws_cloudwatch_log_group.lambda.name}"


def test_async_invocations_are_not_blindly_retried_and_failures_have_a_destination() -> None:
    config = resource("aws_lambda_function_event_invoke_config", "this")
    assert config["maximum_retry_attempts"] == "${var.async_retry_attempts}"
    assert blocks("variable")["async_retry_attempts"]["default"] == 0
    on_failure = block(block(config, "destination_config"), "on_failure")
    assert "aws_sqs_queue." in on_failure["destination"]


# --- fan-out ---------------------------------------------------------------------------------------------
def test_queue_triggers_the_function_capped_at_worker_concurrency_with_partial_batch_failures() -> None:
    mapping = resource("aws_lambda_event_source_mapping", "blast")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert block(mapping, "scaling_config")["maximum_concurrency"] == "${var.worker_concurrency}"
    assert "aws_sqs_queue.blast.arn" in mapping["event_source_arn"]
    lambda_tf = (TF_DIR / "lambda.tf").read_text(encoding="utf-8")
    assert re.search(r"WORKER_CONCURRENCY\s*=\s*tostring\(var\.worker_concurrency\)", lambda_tf)


def test_queue_visibility_is_six_function_timeouts_and_failing_chunks_go_to_a_dlq() -> None:
    queue = resource("aws_sqs_queue", "blast")
    assert queue["visibility_timeout_seconds"] == "${local.queue_visibility_timeout}"
    assert re.search(r"queue_visibility_timeout\s*=\s*var\.function_timeout \* 6\b", source_text())
    assert "aws_sqs_queue.blast_dlq.arn" in queue["redrive_policy"]
    assert "maxReceiveCount" in queue["redrive_policy"]


# --- data ------------------------------------------------------------------------------------------------
def test_ledger_table_has_the_contracts_keys_ttl_recovery_and_encryption() -> None:
    table = resource("aws_dynamodb_table", "ledger")
    assert (table["hash_key"], table["range_key"], table["billing_mode"]) == ("blast_id", "email", "PAY_PER_REQUEST")
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {("blast_id", "S"), ("email", "S")}
    assert block(table, "ttl") == {"attribute_name": "expires_at", "enabled": True}
    assert block(table, "point_in_time_recovery")["enabled"] is True
    assert block(table, "server_side_encryption")["enabled"] is True


def test_secret_is_kms_encrypted_and_its_value_never_enters_the_state() -> None:
    secret = resource("aws_secretsmanager_secret", "this")
    assert "aws_kms_key" in secret["kms_key_id"]
    assert not blocks("resource", "aws_secretsmanager_secret_version")
    assert "secret_string" not in source_text()


# --- IAM -------------------------------------------------------------------------------------------------
def _function_statements() -> list[dict[str, Any]]:
    documents = blocks("data", "aws_iam_policy_document")
    statements = []
    for policy in blocks("resource", "aws_iam_role_policy").values():
        if "aws_iam_role.lambda" in policy["role"]:
            name = re.search(r"aws_iam_policy_document\.(\w+)", policy["policy"])
            assert name
            document = documents[name.group(1)]
            statements += document.get("statement", [])
            for dynamic in document.get("dynamic", []):
                statements += dynamic.get("statement", {}).get("content", [])
    return statements


NO_RESOURCE_TYPE = {
    "ses:GetAccount",
    "ses:GetSuppressedDestination",
    "ses:ListSuppressedDestinations",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


def test_only_actions_without_a_resource_type_get_resource_star() -> None:
    for statement in _function_statements():
        if "*" in statement["resources"]:
            assert set(statement["actions"]) <= NO_RESOURCE_TYPE, statement["actions"]


def test_sends_are_scoped_to_the_from_identity_with_a_from_address_condition() -> None:
    sends = [s for s in _function_statements() if "ses:SendEmail" in s["actions"]]
    assert len(sends) == 1
    (send,) = sends
    assert set(send["actions"]) == {"ses:SendEmail", "ses:SendRawEmail"}
    assert "identity" in " ".join(str(r) for r in send["resources"]) or "ses_identity_arns" in str(send["resources"])
    conditions = send["condition"]
    assert [c["variable"] for c in conditions] == ["ses:FromAddress"]
    assert conditions[0]["values"] == "${var.ses_from_addresses}"


def test_the_scheduler_role_may_invoke_this_function_and_nothing_else() -> None:
    document = blocks("data", "aws_iam_policy_document")["scheduler_invoke"]
    (statement,) = document["statement"]
    assert statement["actions"] == ["lambda:InvokeFunction"]
    assert all("aws_lambda_function.this.arn" in r for r in statement["resources"])
    schedule = resource("aws_scheduler_schedule", "blast")
    assert schedule["for_each"] == "${var.schedules}"
    assert "aws_iam_role.scheduler" in block(schedule, "target")["role_arn"]


# --- alarms ------------------------------------------------------------------------------------------------
def test_alarms_watch_errors_throttles_the_dlq_and_failed_records() -> None:
    alarms = blocks("resource", "aws_cloudwatch_metric_alarm").values()
    metrics = {(a["namespace"], a["metric_name"]) for a in alarms}
    assert ("AWS/Lambda", "Errors") in metrics
    assert ("AWS/Lambda", "Throttles") in metrics
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics
    (failed,) = [a for a in alarms if a["metric_name"] == "RecordsFailed"]
    assert failed["namespace"] == "${var.metrics_namespace}"
    assert failed["dimensions"] == {"service": "${var.service_name}"}
    assert blocks("variable")["metrics_namespace"]["default"] == "JadaBlastSender"
    assert all(a["alarm_actions"] == "${local.alarm_actions}" for a in alarms)
