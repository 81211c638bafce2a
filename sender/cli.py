"""The `blast` command: the same pipeline as the Lambda, run locally or against the deployed function."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sender import __version__
from sender.errors import SenderError
from sender.models import BlastEvent, Status, parse_event, refused, safe_blast_id
from sender.settings import default_region

EXIT_OK, EXIT_REFUSED, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 3, 2
OFFLINE_PLACEHOLDER = {"from_address": "Example Sender <sender@example.com>"}


class UsageError(Exception):
    """An input the command cannot read: exit status 2 with the message."""


def _read_text(path: str, what: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"blast: cannot read {what} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"blast: {what} {path} is not UTF-8 text") from None


def _read_event(path: str) -> Any:
    text = _read_text(path, "the event")
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(f"blast: {path} is not valid JSON: {e}") from None


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_summary(response: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(response, indent=2, default=str))
        return
    from rich.table import Table

    console = _console()
    status = response.get("status")
    title = f"blast {response.get('blast_id')}: {status}" + (" (dry run)" if response.get("dry_run") else "")
    if status == "refused":
        err = response.get("error", {})
        console.print(f"[bold red]{title}[/]\n{err.get('code')}: {err.get('message')}")
        return
    table = Table(title=title)
    for key in response.get("counts", {}):
        table.add_column(key, justify="right")
    table.add_row(*(str(v) for v in response.get("counts", {}).values()))
    console.print(table)
    for warning in response.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    problems = [
        r for r in response.get("records", []) if r["status"] in (Status.INVALID, Status.FAILED, Status.UNKNOWN)
    ][:20]
    for r in problems:
        console.print(f"  {r['status']:>8}  {r['email'] or '(no address)'}: {r['reason']}")
    rate = response.get("rate") or {}
    if rate.get("achieved"):
        console.print(f"rate: {rate['achieved']}/s (limit {rate.get('limit')}), throttles {rate.get('throttles')}")
    if response.get("error"):
        console.print(f"[bold red]stopped:[/] {response['error']['code']}: {response['error']['message']}")
    if response.get("continue"):
        console.print(f"[yellow]{response['continue']}[/]")
    if response.get("preview"):
        console.print(f"messages written to {response['preview']}")


def _exit_code(response: dict[str, Any]) -> int:
    status = response.get("status")
    if status == "refused":
        return EXIT_REFUSED
    if status == "partial" or response.get("error"):
        return EXIT_PARTIAL
    return EXIT_OK


class _ProgressBar:
    """A progress bar on a terminal (sent/failed/rate/ETA); silent elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[detail]}"),
                TimeRemainingColumn(),
                console=_console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("blast", total=None, detail="")
        return self

    def update(self, p: Any) -> None:
        if self._progress is None:
            return
        detail = f"sent {p.counts['sent'] + p.counts['dry_run']}  failed {p.counts['failed']}  {p.rate:.1f}/s"
        self._progress.update(self._task, completed=p.done, total=p.total, detail=detail)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _run_local(args: argparse.Namespace, *, dry_run: bool) -> int:
    from sender.config import parse_config
    from sender.pipeline import run_blast
    from sender.preview import PreviewWriter
    from sender.settings import Settings
    from sender.wiring import build_deps

    raw = _read_event(args.event)
    if isinstance(raw, dict):
        if dry_run:
            raw["dry_run"] = True
        elif raw.get("dry_run"):
            print("blast: the event says dry_run: true; use `blast dry-run` or remove it", file=sys.stderr)
            return EXIT_USAGE
        if getattr(args, "resend_unknown", False):
            raw["resend_unknown"] = True
    try:
        event: BlastEvent = parse_event(raw)
        if event.action not in ("send", "preflight"):
            raise SenderError(f"`blast {args.command}` runs send or preflight events, not {event.action!r}")
        settings = Settings.from_env()
        config = None
        if args.config:
            config = parse_config(_read_text(args.config, "--config"))
        elif args.offline:
            # Offline means no AWS at all: the secret is not read even when SENDER_SECRET_ID is set.
            print("warning: offline and no --config: using a placeholder From", file=sys.stderr)
            config = parse_config(OFFLINE_PLACEHOLDER)
        writer = None
        out_dir = None
        if dry_run and not args.no_files and event.blast_id:
            out_dir = Path(args.out) / event.blast_id
            writer = PreviewWriter(out_dir, event.blast_id)
        with _ProgressBar(not args.json) as bar:
            deps = build_deps(
                settings,
                config=config,
                offline=args.offline,
                writer=writer,
                progress=bar.update,
                progress_interval=0.2,
            )
            response = run_blast(event, deps)
        if out_dir is not None:
            response["preview"] = str(out_dir / "index.html")
    except SenderError as e:
        response = refused(safe_blast_id(raw), e.code, e.message, dry_run=dry_run)
    except (BotoCoreError, ClientError) as e:
        response = refused(safe_blast_id(raw), "AwsError", f"an AWS call failed: {e}", dry_run=dry_run)
    except OSError as e:
        response = refused(safe_blast_id(raw), "OutputError", f"cannot write the dry-run files: {e}", dry_run=dry_run)
    print_summary(response, as_json=args.json)
    return _exit_code(response)


def cmd_dry_run(args: argparse.Namespace) -> int:
    return _run_local(args, dry_run=True)


def cmd_send(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print("blast send: refusing to send without --yes when not on a terminal", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"Send {args.event} for real with your AWS credentials? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return EXIT_USAGE
    return _run_local(args, dry_run=False)


def cmd_invoke(args: argparse.Namespace) -> int:
    import boto3

    payload = _read_event(args.event)
    if args.dry_run and isinstance(payload, dict):
        payload["dry_run"] = True
    try:
        client = boto3.client("lambda", region_name=args.region or default_region())
        answer = client.invoke(
            FunctionName=args.function,
            InvocationType="Event" if args.asynchronous else "RequestResponse",
            Payload=json.dumps(payload).encode(),
        )
    except (BotoCoreError, ClientError) as e:
        print(f"blast invoke: {e}", file=sys.stderr)
        return EXIT_REFUSED
    if args.asynchronous:
        print(f"queued (HTTP {answer.get('StatusCode')})")
        return EXIT_OK
    body = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        print(json.dumps(body, indent=2), file=sys.stderr)
        return EXIT_REFUSED
    print_summary(body, as_json=args.json)
    return _exit_code(body) if isinstance(body, dict) else EXIT_REFUSED


def cmd_status(args: argparse.Namespace) -> int:
    from sender.settings import Settings
    from sender.status import blast_status

    try:
        summary = blast_status(args.blast_id, Settings.from_env())
    except SenderError as e:
        summary = refused(safe_blast_id({"blast_id": args.blast_id}), e.code, e.message)
    except (BotoCoreError, ClientError) as e:
        summary = refused(safe_blast_id({"blast_id": args.blast_id}), "AwsError", f"an AWS call failed: {e}")
    print(json.dumps(summary, indent=2, default=str))
    return EXIT_REFUSED if summary.get("status") == "refused" else EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from sender import doctor

    code: int = doctor.main(args)
    return code


def cmd_smtp_password(args: argparse.Namespace) -> int:
    from sender import smtp

    code: int = smtp.main(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blast",
        description="Send email blasts through SES v2, refusing when the send would fail. "
        "Configuration comes from the Secrets Manager secret named by SENDER_SECRET_ID.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def event_command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("event", metavar="EVENT.json", help="the invoke payload (CONTRACT), or - for stdin")
        p.add_argument("--config", metavar="FILE", help="sender configuration JSON instead of the secret (testing)")
        p.add_argument("--json", action="store_true", help="print the whole response as JSON")
        return p

    p = event_command("dry-run", "Run preflight, suppression and rendering; send nothing; write .eml previews.")
    p.add_argument("--offline", action="store_true", help="no AWS at all: skip the AWS checks (with a warning)")
    p.add_argument("--out", default="out", help="folder for out/<blast_id>/*.eml and index.html (default: out)")
    p.add_argument("--no-files", action="store_true", help="render without writing files")
    p.set_defaults(func=cmd_dry_run)

    p = event_command("send", "Run the blast here with your own AWS credentials (no deployed function needed).")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--resend-unknown", action="store_true", help="also re-send recipients whose outcome is unknown")
    p.set_defaults(func=cmd_send, offline=False, no_files=True, out="out")

    p = event_command(
        "resend-unknown",
        "Re-run a blast and re-send, once, the recipients whose earlier send has an unknown outcome.",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_send, offline=False, no_files=True, out="out", resend_unknown=True)

    p = sub.add_parser("invoke", help="Invoke the deployed function with EVENT.json and print its response.")
    p.add_argument("event", metavar="EVENT.json")
    p.add_argument("--function", required=True, help="function name or ARN")
    p.add_argument("--region", help="the function's region (default: your AWS configuration)")
    p.add_argument("--dry-run", action="store_true", help='set "dry_run": true in the payload')
    p.add_argument("--async", dest="asynchronous", action="store_true", help="invoke asynchronously")
    p.add_argument("--json", action="store_true", help="print the whole response as JSON")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("status", help="Summarise a blast from the delivery ledger (DELIVERY_TABLE).")
    p.add_argument("blast_id")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="Walk every layer of deliverability and report PASS / WARN / FAIL.")
    p.add_argument("--recipient", action="append", default=[], metavar="EMAIL", help="also check this address")
    p.add_argument(
        "--smtp",
        action="store_true",
        help="check the stored SMTP password (IAM secret key on stdin "
        "or in SES_IAM_SECRET_ACCESS_KEY) and probe SMTP AUTH",
    )
    p.add_argument("--no-probe", action="store_true", help="with --smtp: compare the password only, no SMTP AUTH")
    p.add_argument(
        "--smtp-endpoint",
        metavar="HOST[:PORT]",
        help="SMTP endpoint to probe (default: email-smtp.<ses region>.amazonaws.com:587, STARTTLS)",
    )
    p.add_argument(
        "--max-suppression-pages",
        type=int,
        default=10,
        metavar="N",
        help="count at most N pages of 1,000 suppression-list entries, about 1 s each (default 10; 0 = skip)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--config", metavar="FILE", help="sender configuration JSON instead of the secret (testing)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "smtp-password",
        help="Derive the SES SMTP password from an IAM secret access key (read from stdin or "
        "SES_IAM_SECRET_ACCESS_KEY, never from the command line).",
    )
    p.add_argument("--region", required=True, help="the SES region the SMTP endpoint is in")
    p.set_defaults(func=cmd_smtp_password)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("BLAST_LOG_TO_STDERR", "1")
    try:
        code: int = args.func(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
