"""The function's IAM grants (infra/terraform/iam.tf) and the AWS calls its code makes (sender/*.py) agree.

Both directions: every call the code makes is granted (or the function fails in AWS with AccessDenied),
and every granted action is called or named below with the reason it is needed without a call in our
source (least privilege: a grant nobody uses is a grant to remove).

Calls are collected from the source with `ast`: in each module, the service comes from string-literal
`<x>.client("<service>")` calls, and the operations from attributes of any name or attribute ending in
`client` (`self._client.send_email(...)`, `client.get_object`, or a bound method passed on, as in
`self._management(self._client.get_account)`). botocore's own service model turns a method name into the
API operation (client.meta.method_to_api_mapping) and the IAM prefix (the signing name; sesv2 -> ses).
sender/cli.py is left out: it runs on the operator's machine with the operator's own credentials.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[1]
IAM_TF = ROOT / "infra" / "terraform" / "iam.tf"
SENDER = ROOT / "sender"
FUNCTION_ROLE = "aws_iam_role.lambda"
# Run with the operator's credentials, never with the function's role.
NOT_IN_THE_FUNCTION = frozenset({"cli.py"})

# Client attributes that are not API calls.
CLIENT_HELPERS = frozenset({"meta", "exceptions", "can_paginate", "close"})
# An operation whose IAM action is not the operation's own name (the batch forms authorize as the single one).
OPERATION_ACTIONS: dict[str, frozenset[str]] = {
    "sqs:SendMessageBatch": frozenset({"sqs:SendMessage"}),
    "sqs:DeleteMessageBatch": frozenset({"sqs:DeleteMessage"}),
    "sqs:ChangeMessageVisibilityBatch": frozenset({"sqs:ChangeMessageVisibility"}),
}
# boto3's S3 transfer methods: not API operations, but they call these.
S3_TRANSFER = {
    "download_file": frozenset({"s3:GetObject"}),
    "download_fileobj": frozenset({"s3:GetObject"}),
    "upload_file": frozenset({"s3:PutObject"}),
    "upload_fileobj": frozenset({"s3:PutObject"}),
}

# Calls made for us by a library: when the source calls the name on the left, the code needs these actions.
LIBRARY_CALLS: dict[str, frozenset[str]] = {
    # powertools parameters: SecretsProvider(...).get() / get_secret() call GetSecretValue.
    "SecretsProvider": frozenset({"secretsmanager:GetSecretValue"}),
    "get_secret": frozenset({"secretsmanager:GetSecretValue"}),
}
# Actions needed because of another action the code calls.
IMPLIED_BY: dict[str, frozenset[str]] = {
    # SES v2 SendEmail with Content.Raw (our messages are built as MIME) is also authorized as SendRawEmail.
    "ses:SendEmail": frozenset({"ses:SendRawEmail"}),
}
# Actions the function's role needs although no line of sender/ calls them: AWS uses the role for us.
RUNTIME_ACTIONS: dict[str, str] = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs to its log group with the role",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs to its log group with the role",
    "sqs:ReceiveMessage": "the SQS event source mapping polls the blast queue with the function's role",
    "sqs:DeleteMessage": "the event source mapping deletes the chunks a worker finished",
    "sqs:GetQueueAttributes": "the event source mapping reads the queue's attributes",
    "sqs:SendMessage": "Lambda sends failed async invocations to the on-failure destination with the role",
    "kms:Decrypt": "Secrets Manager, DynamoDB and SQS decrypt with the stack's key on the caller's behalf",
    "kms:GenerateDataKey": "DynamoDB and SQS encrypt what the function writes with the stack's key",
    "xray:PutTraceSegments": "the Lambda runtime sends traces when tracing_mode = Active",
    "xray:PutTelemetryRecords": "the Lambda runtime sends traces when tracing_mode = Active",
}


# --- the code's side -------------------------------------------------------------------------------
class CollectError(Exception):
    """The source cannot be read for AWS calls; the message says where and why."""


@dataclass(frozen=True)
class Call:
    action: str
    where: str  # module:line


@cache
def method_map(service: str) -> tuple[str, dict[str, str]]:
    """(IAM prefix, python method name -> API operation name) from botocore's model of `service`."""
    client: Any = boto3.client(  # type: ignore[call-overload]  # the service is a variable here
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # a client built offline, never used
    )
    model = client.meta.service_model
    mapping = dict(client.meta.method_to_api_mapping)
    for operation in mapping.values():
        model.operation_model(operation)  # the mapping and the model agree, or this raises
    return model.signing_name, mapping


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _is_client_expr(node: ast.AST) -> bool:
    name = _dotted(node)
    return name is not None and name.rsplit(".", 1)[-1].lower().endswith("client")


def _client_services(node: ast.AST) -> list[str]:
    """Services of every `<x>.client("svc")` / `.client(service_name="svc")` call inside `node`."""
    services = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "client":
            args = [*sub.args[:1], *(k.value for k in sub.keywords if k.arg == "service_name")]
            literal = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if literal:
                services.append(literal[0])
    return services


def _bindings(tree: ast.AST) -> dict[str, str]:
    """Which client expression holds which service: `x = boto3.client("sts")`, then `self._c = x`."""
    bound: dict[str, str] = {}
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None]
    for _ in range(3):  # follow a few hops of plain assignment, whatever order ast.walk gives
        for node in assigns:
            assert node.value is not None
            services = set(_client_services(node.value))
            source = _dotted(node.value)
            if not services and source in bound:
                services = {bound[source]}
            if len(services) != 1:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = _dotted(target)
                if name is not None:
                    bound[name] = next(iter(services))
    return bound


def _foreign_bindings(tree: ast.AST) -> set[str]:
    """Names bound to an object of another library (`with smtplib.SMTP(...) as client`): not AWS clients."""
    modules = {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } - {"boto3", "botocore"}
    pairs: list[tuple[ast.AST, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.With | ast.AsyncWith):
            pairs += [(item.optional_vars, item.context_expr) for item in node.items if item.optional_vars]
        elif isinstance(node, ast.Assign):
            pairs += [(target, node.value) for target in node.targets]
    foreign = set()
    for target, value in pairs:
        if isinstance(value, ast.Call) and not _client_services(value):
            root = (_dotted(value.func) or "").split(".")[0]
            if root in modules and (name := _dotted(target)) is not None:
                foreign.add(name)
    return foreign


def _library_calls(tree: ast.AST, module: str) -> list[Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (name := _dotted(node.func)) is not None:
            for action in sorted(LIBRARY_CALLS.get(name.rsplit(".", 1)[-1], ())):
                calls.append(Call(action, f"{module}:{node.lineno}"))
    return calls


def _resolve(candidates: list[str], method: str, where: str) -> set[str]:
    """IAM actions of `method` on whichever candidate service has it (exactly one must)."""
    by_service: dict[str, set[str]] = {}
    for service in candidates:
        prefix, mapping = method_map(service)
        if method in mapping:
            by_service[service] = {f"{prefix}:{mapping[method]}"}
        elif service == "s3" and method in S3_TRANSFER:
            by_service[service] = set(S3_TRANSFER[method])
    if not by_service:
        raise CollectError(
            f"{where}: `{method}` is not an operation of {' or '.join(candidates)} "
            "(a typo, or a client helper this test should learn)"
        )
    if len(by_service) > 1:
        raise CollectError(f"{where}: `{method}` exists in {sorted(by_service)}; assign each client to its own name")
    (operations,) = by_service.values()
    actions: set[str] = set()
    for operation in operations:
        actions |= OPERATION_ACTIONS.get(operation, frozenset({operation}))
    return actions


@cache
def _resource_services() -> frozenset[str]:
    return frozenset(boto3.session.Session().get_available_resources())


def collect_module(source: str, module: str) -> list[Call]:
    """The AWS calls of one module's source, as IAM actions."""
    tree = ast.parse(source, filename=module)
    services = sorted(set(_client_services(tree)))
    bindings = _bindings(tree)
    foreign = _foreign_bindings(tree)
    calls = _library_calls(tree, module)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "resource"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in _resource_services()
        ):
            raise CollectError(f"{module}:{node.lineno}: boto3 resources hide their calls from this test; use a client")
        if not (isinstance(node, ast.Attribute) and _is_client_expr(node.value)):
            continue
        method, where = node.attr, f"{module}:{node.lineno}"
        if method in CLIENT_HELPERS or method.startswith("_"):
            continue
        receiver = _dotted(node.value) or ""
        if receiver in foreign and receiver not in bindings:
            continue
        if not services:
            raise CollectError(
                f"{where}: `{receiver}.{method}` calls AWS, but {module} builds no client with a literal "
                'service name (`boto3.client("<service>")`), so the test cannot tell which service it is'
            )
        candidates = [bindings[receiver]] if receiver in bindings else services
        if method in ("get_paginator", "get_waiter"):
            parent = _parent_call(tree, node)
            literal = parent.args[0] if parent is not None and parent.args else None
            if method == "get_waiter" or not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
                raise CollectError(f"{where}: {method} needs a string-literal operation for this test to follow")
            method = literal.value
        calls.extend(Call(action, where) for action in sorted(_resolve(candidates, method, where)))
    return calls


def _parent_call(tree: ast.AST, func: ast.AST) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.func is func:
            return node
    return None


def collect_calls(package: Path = SENDER) -> list[Call]:
    calls = []
    for path in sorted(package.glob("*.py")):
        if path.name not in NOT_IN_THE_FUNCTION:
            calls.extend(collect_module(path.read_text(encoding="utf-8"), f"sender/{path.name}"))
    return calls


# --- the Terraform side ----------------------------------------------------------------------------
def _unquote(value: Any) -> Any:
    """python-hcl2 >= 5 keeps the quotes of string literals and block labels; older versions drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(parsed: dict[str, Any], kind: str, type_: str) -> dict[str, dict[str, Any]]:
    found = {}
    for entry in parsed.get(kind, []):
        for block_type, named in entry.items():
            if _unquote(block_type) == type_:
                for name, body in named.items():
                    found[_unquote(name)] = body
    return found


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if _unquote(label) == "statement":
                statements.extend(body.get("content", []))
    return statements


def granted_actions(tf_path: Path = IAM_TF) -> dict[str, set[str]]:
    """Action -> policy documents granting it, over every policy attached to the function's role
    (count-gated ones included: the union of what any configuration may grant)."""
    with tf_path.open(encoding="utf-8") as f:
        parsed = hcl2.load(f)
    documents = _blocks(parsed, "data", "aws_iam_policy_document")
    attached = []
    for name, policy in _blocks(parsed, "resource", "aws_iam_role_policy").items():
        if FUNCTION_ROLE not in str(policy.get("role", "")):
            continue
        match = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)", str(policy.get("policy", "")))
        assert match, f"aws_iam_role_policy.{name} must take its policy from an aws_iam_policy_document"
        attached.append(match.group(1))
    grants: dict[str, set[str]] = {}
    for document in attached:
        for statement in _statements(documents[document]):
            assert _unquote(statement.get("effect", "Allow")) == "Allow", f"{document}: only Allow statements"
            for action in statement.get("actions", []):
                grants.setdefault(_unquote(action), set()).add(document)
    return grants


# --- the tests -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calls() -> list[Call]:
    return collect_calls()


@pytest.fixture(scope="module")
def grants() -> dict[str, set[str]]:
    return granted_actions()


def test_the_function_role_has_policies_to_compare(grants: dict[str, set[str]]) -> None:
    assert "ses:SendEmail" in grants
    assert all("*" not in action for action in grants), "no wildcard actions on the function's role"


def test_every_aws_call_of_the_code_is_granted(calls: list[Call], grants: dict[str, set[str]]) -> None:
    implied = {extra for call in calls for extra in IMPLIED_BY.get(call.action, ())}
    needed = {call.action for call in calls} | implied
    missing = sorted(needed - set(grants))
    where = {a: sorted({c.where for c in calls if c.action == a}) for a in missing}
    assert not missing, f"called but not granted in iam.tf (AccessDenied in AWS): {where}"


def test_every_grant_is_called_or_explained(calls: list[Call], grants: dict[str, set[str]]) -> None:
    called = {call.action for call in calls}
    implied = {extra for action in called for extra in IMPLIED_BY.get(action, ())}
    unused = sorted(set(grants) - called - implied - set(RUNTIME_ACTIONS))
    detail = {a: sorted(grants[a]) for a in unused}
    assert not unused, f"granted in iam.tf but never called by sender/ (remove, or explain it here): {detail}"


def test_no_module_outside_the_cli_invokes_lambda_unless_granted(calls: list[Call]) -> None:
    self_invokes = [c.where for c in calls if c.action.startswith("lambda:")]
    assert not self_invokes or "lambda:InvokeFunction" in granted_actions(), self_invokes


# --- the collector itself, on made-up modules --------------------------------------------------------
ADAPTER = """
import boto3

class Adapter:
    def __init__(self, client=None, session=None):
        if client is None:
            factory = session if session is not None else boto3
            client = factory.client("sesv2", region_name="us-west-2")
        self._client = client

    def account(self):
        return self._retry(self._client.get_account)

    def send(self, request):
        return self._client.send_email(**request)

    def pages(self):
        return self._client.get_paginator("list_suppressed_destinations").paginate()

    def region(self):
        return self._client.meta.region_name
"""


def test_collector_reads_calls_bound_methods_and_paginators() -> None:
    actions = {c.action for c in collect_module(ADAPTER, "adapter.py")}
    assert actions == {"ses:GetAccount", "ses:SendEmail", "ses:ListSuppressedDestinations"}


def test_collector_maps_batch_operations_to_their_iam_action() -> None:
    source = 'import boto3\nsqs_client = boto3.client("sqs")\nsqs_client.send_message_batch(QueueUrl="q", Entries=[])\n'
    assert [c.action for c in collect_module(source, "fanout.py")] == ["sqs:SendMessage"]


def test_collector_keeps_two_clients_of_one_module_apart() -> None:
    source = (
        "import boto3\n"
        'sts_client = boto3.client("sts")\n'
        'ses_client = boto3.client(service_name="sesv2")\n'
        "sts_client.get_caller_identity()\n"
        "ses_client.get_account()\n"
    )
    assert {c.action for c in collect_module(source, "two.py")} == {"sts:GetCallerIdentity", "ses:GetAccount"}


def test_collector_counts_powertools_secret_reads() -> None:
    source = "from aws_lambda_powertools.utilities import parameters\nparameters.SecretsProvider().get('x')\n"
    assert [c.action for c in collect_module(source, "config.py")] == ["secretsmanager:GetSecretValue"]


def test_collector_ignores_another_librarys_object_named_client() -> None:
    source = "import smtplib\nwith smtplib.SMTP('localhost') as client:\n    client.ehlo()\n"
    assert collect_module(source, "smtp.py") == []


def test_collector_refuses_a_client_whose_service_it_cannot_see() -> None:
    source = "def record(table_client, item):\n    table_client.put_item(TableName='t', Item=item)\n"
    with pytest.raises(CollectError, match=r"ledger\.py:2: .*builds no client with a literal service name"):
        collect_module(source, "ledger.py")


def test_collector_refuses_an_operation_the_service_does_not_have() -> None:
    source = 'import boto3\nclient = boto3.client("sesv2")\nclient.send_raw_email(RawMessage={})\n'
    with pytest.raises(CollectError, match="send_raw_email` is not an operation of sesv2"):
        collect_module(source, "ses.py")


def test_collector_refuses_boto3_resources() -> None:
    source = 'import boto3\ntable = boto3.resource("dynamodb").Table("t")\n'
    with pytest.raises(CollectError, match="use a client"):
        collect_module(source, "ledger.py")
