"""One benchmark scenario per child process: `python -m benchmarks.scenarios NAME '{json args}'`.

Each prints one JSON object as its last stdout line. The sender's log lines (one JSON line per record) are
still formatted, as in production, but written to /dev/null so they cannot mix with the result.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "examples" / "sender-config.json"
EVENT = REPO / "examples" / "regatta-invite.json"
TEMPLATE = "regatta-invite"


def _quiet_logs() -> None:
    """Keep formatting every record (its CPU is part of the cost) but write the lines to /dev/null."""
    from sender.log import logger

    handler = logger.registered_handler
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    handler.setStream(sink)  # type: ignore[attr-defined]


def recipients(n: int, *, prefix: str = "sailor") -> list[dict[str, Any]]:
    """`n` distinct recipients shaped like a real list: a name for each, a var for some."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        entry: dict[str, Any] = {"email": f"{prefix}{i}@example.com", "name": f"Sailor {i}"}
        if i % 3 == 0:
            entry["vars"] = {"seats": 1 + i % 4}
        out.append(entry)
    return out


def _globals() -> dict[str, Any]:
    return dict(json.loads(EVENT.read_text(encoding="utf-8"))["globals"])


def _config() -> Any:
    from sender.config import parse_config

    return parse_config(CONFIG.read_text(encoding="utf-8"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class _CpuMeter:
    """Thread CPU seconds spent inside one kind of call, summed over every thread."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds
            self.calls += 1


def blast(args: dict[str, Any]) -> dict[str, Any]:
    """A real blast through the pipeline against the stand-in (AWS_ENDPOINT_URL_SESV2 in the environment),
    with client CPU split into render+MIME, the SDK call and the rest."""
    _quiet_logs()
    from sender.models import parse_event
    from sender.pipeline import MAX_CONCURRENCY, Blast
    from sender.ses import SesAdapter
    from sender.settings import Settings
    from sender.wiring import build_deps

    render_cpu, sdk_cpu = _CpuMeter(), _CpuMeter()

    class TimedSes(SesAdapter):
        def send(self, request: dict[str, Any]) -> str:
            start = time.thread_time()
            try:
                return super().send(request)
            finally:
                sdk_cpu.add(time.thread_time() - start)

    class TimedBlast(Blast):
        def _render(self, entry: Any, template: Any) -> bytes:
            start = time.thread_time()
            try:
                return super()._render(entry, template)
            finally:
                render_cpu.add(time.thread_time() - start)

    settings = Settings(region="us-west-2", send_concurrency=args.get("concurrency"))
    ses = TimedSes(region="us-west-2", pool_size=settings.send_concurrency or MAX_CONCURRENCY)
    deps = build_deps(settings, config=_config(), ses=ses)
    event = parse_event(
        {
            "blast_id": args.get("blast_id", "bench"),
            "template": TEMPLATE,
            "globals": _globals(),
            "recipients": recipients(int(args["recipients"]), prefix=args.get("prefix", "sailor")),
            "tags": {"campaign": "bench"},
        }
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    response = TimedBlast(event, deps).run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    sent = response["counts"]["sent"]
    return {
        "counts": response["counts"],
        "rate": response.get("rate"),
        "suppression": response.get("suppression"),
        "wall_s": wall,
        "cpu_s": cpu,
        "render_cpu_s": render_cpu.seconds,
        "sdk_cpu_s": sdk_cpu.seconds,
        "sdk_calls": sdk_cpu.calls,
        "sent": sent,
        "log_line_us": _log_line_us(response["records"][0] if response["records"] else {}),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _log_line_us(record: dict[str, Any], n: int = 3000) -> float:
    """CPU microseconds for the one Powertools JSON log line written per record (to /dev/null here)."""
    from sender.log import logger

    start = time.process_time()
    for _ in range(n):
        logger.info("delivery record", extra={"record": record})
    return (time.process_time() - start) / n * 1e6


def naive(args: dict[str, Any]) -> dict[str, Any]:
    """The old sender's shape: render, then one SendEmail at a time, waiting for each answer."""
    import boto3

    from sender.render import Renderer, build_context, build_mime
    from sender.settings import PACKAGE_TEMPLATES

    config = _config()
    template = Renderer(PACKAGE_TEMPLATES).load(TEMPLATE)
    client = boto3.client("sesv2", region_name="us-west-2")
    globals_ = _globals()
    people = recipients(int(args["recipients"]), prefix="naive")
    sent = throttled = 0
    wall0 = time.perf_counter()
    for person in people:
        context = build_context(globals_, person.get("vars", {}), person["email"], person["name"])
        context["unsubscribe"] = config.list_unsubscribe
        rendered = template.render(context)
        raw = build_mime(
            from_name=config.from_name,
            from_email=config.from_email,
            to_name=person["name"],
            to_email=person["email"],
            rendered=rendered,
        )
        try:
            client.send_email(
                FromEmailAddress=config.from_address,
                Destination={"ToAddresses": [person["email"]]},
                Content={"Raw": {"Data": raw}},
            )
            sent += 1
        except client.exceptions.TooManyRequestsException:
            throttled += 1
    wall = time.perf_counter() - wall0
    return {"sent": sent, "throttled": throttled, "wall_s": wall, "rate": sent / wall}


def dry_run(args: dict[str, Any]) -> dict[str, Any]:
    """An offline dry run through the whole pipeline (validate, render, MIME, record, log), no AWS at all.

    With `csv` set, recipients stream from that file (S3Source when the build has it, reading a local copy;
    else a small file-backed source): the peak RSS then shows whether anything holds the whole list.
    """
    _quiet_logs()
    from sender.models import parse_event
    from sender.pipeline import run_blast
    from sender.settings import Settings
    from sender.wiring import build_deps

    deps = build_deps(Settings(), config=_config(), offline=True)
    raw_event: dict[str, Any] = {"blast_id": "bench-dry", "template": TEMPLATE, "globals": _globals(), "dry_run": True}
    source_kind = "inline"
    if args.get("csv"):
        from benchmarks.filesource import open_local_csv

        raw_event["recipients_uri"] = "s3://bench-lists/list.csv"
        source, source_kind = open_local_csv(Path(args["csv"]))
        deps.open_recipients = lambda event: source
    else:
        raw_event["recipients"] = recipients(int(args["recipients"]))
    event = parse_event(raw_event)
    rss_before = _peak_rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    response = run_blast(event, deps)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rendered = response["counts"]["dry_run"]
    return {
        "counts": response["counts"],
        "records_inline": len(response["records"]),
        "source": source_kind,
        "wall_s": wall,
        "cpu_s": cpu,
        "rate_wall": rendered / wall,
        "rate_cpu": rendered / cpu if cpu else 0.0,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def fanout(args: dict[str, Any]) -> dict[str, Any]:
    """A fan-out blast end to end in one process: the planner enqueues chunks on (moto) SQS, then `workers`
    threads each run the Lambda handler on one chunk at a time, as the event source mapping would with
    maximum_concurrency = workers. SES is the stand-in; DynamoDB, SQS and Secrets Manager are moto."""
    _quiet_logs()
    import boto3
    from moto import mock_aws

    from sender.handler import lambda_handler

    n, workers, chunk = int(args["recipients"]), int(args["workers"]), int(args["chunk_size"])

    class Context:
        function_name = "bench"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:bench"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="deliveries",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "blast_id", "KeyType": "HASH"},
                {"AttributeName": "email", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "blast_id", "AttributeType": "S"},
                {"AttributeName": "email", "AttributeType": "S"},
            ],
        )
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="chunks")["QueueUrl"]
        boto3.client("secretsmanager").create_secret(Name="bench", SecretString=CONFIG.read_text(encoding="utf-8"))
        os.environ.update(
            {
                "SENDER_SECRET_ID": "bench",
                "DELIVERY_TABLE": "deliveries",
                "BLAST_QUEUE_URL": url,
                "CHUNK_SIZE": str(chunk),
                "WORKER_CONCURRENCY": str(workers),
                "SES_MANAGEMENT_RATE": "100",
            }
        )
        event = {
            "blast_id": "bench-fanout",
            "template": TEMPLATE,
            "globals": _globals(),
            "recipients": recipients(n, prefix="fan"),
        }
        queued = lambda_handler(event, Context())
        records: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                break
            for m in got:
                records.append(
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": {},
                        "messageAttributes": {},
                        "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-west-2:1:chunks",
                        "awsRegion": "us-west-2",
                    }
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        lock = threading.Lock()
        failures: list[Any] = []

        def worker() -> None:
            while True:
                with lock:
                    if not records:
                        return
                    record = records.pop(0)
                answer = lambda_handler({"Records": [record]}, Context())
                with lock:
                    failures.extend(answer.get("batchItemFailures", []))

        wall0, cpu0 = time.perf_counter(), time.process_time()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {
            "chunks": queued.get("chunks"),
            "status": queued.get("status"),
            "failures": len(failures),
            "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0,
        }


SCENARIOS = {"blast": blast, "naive": naive, "dry_run": dry_run, "fanout": fanout}


def main(argv: list[str]) -> int:
    name, raw = argv[0], (argv[1] if len(argv) > 1 else "{}")
    result = SCENARIOS[name](json.loads(raw))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
