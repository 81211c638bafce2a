"""Recipient lists from S3 (`recipients_uri`): CSV with a header row, or JSONL; streamed, never read whole.

The object is read through a small buffer, one line at a time, so memory stays flat whatever the file's
size. Every line becomes one entry: a Recipient, or a BadRecipient naming the line (an `invalid` record);
blank lines are skipped. Positions are the file's line numbers (the CSV header is line 1).

CSV: the first line is the header; an `email` column is required (else the whole blast is refused before
anything is sent), `name` is taken as the name, and every other column becomes a var named by its header.
Cells are trimmed; an empty cell is left out of the vars, so a template's `globals` default (or an
`is defined` test) applies to it. Each record is one line: a quoted cell may not hold a line break, so one
broken line (a stray quote) is one invalid record and never swallows the lines after it.

JSONL: one recipient object a line, as in the inline list: {"email": ..., "name": ..., "vars": {...}}.

`start_line`/`end_line` (1-based, inclusive) restrict the entries to a range of the file's lines, for a
worker that sends one chunk of a large list; the lines before the range are read and skipped.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sender.errors import AwsUnavailable, ConfigError, InvalidEvent, SenderError
from sender.log import logger
from sender.models import BadRecipient, Recipient
from sender.recipients import validate_entry
from sender.settings import default_region

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
MAX_LINE_CHARS = 64 * 1024  # a longer line is one invalid record; the reader never holds more than this
READ_BUFFER = 64 * 1024
READ_RETRIES = 3  # a connection lost mid-file is resumed from the byte it stopped at, this many times


class ListChanged(SenderError):
    """The S3 object changed (or vanished) while it was being read."""

    code = "RecipientsChanged"


def parse_s3_uri(uri: str) -> tuple[str, str, str]:
    """(bucket, key, format) of an `s3://BUCKET/KEY.csv|.jsonl` URI, or InvalidEvent."""
    match = S3_URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidEvent("recipients_uri: must be s3://BUCKET/KEY (only S3 lists are supported)")
    key = match["key"]
    for suffix, kind in FORMATS.items():
        if key.lower().endswith(suffix):
            return match["bucket"], key, kind
    raise InvalidEvent("recipients_uri: the object must end in .csv (with a header row) or .jsonl")


def _s3_error(error: Exception, where: str) -> SenderError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code") or "Unknown")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in ("NoSuchKey", "NotFound") or (status == 404 and code != "NoSuchBucket"):
            return InvalidEvent(f"recipients_uri: there is no object {where}")
        if code == "NoSuchBucket":
            return InvalidEvent(f"recipients_uri: the bucket of {where} does not exist")
        if code in ("AccessDenied", "AllAccessDisabled", "KMS.AccessDeniedException") or status == 403:
            return ConfigError(
                f"recipients_uri: access denied reading {where} (or it does not exist): the role needs "
                "s3:GetObject on it, and kms:Decrypt if it is encrypted with a customer managed key"
            )
        if code in ("PreconditionFailed", "InvalidRange"):
            return ListChanged(f"recipients_uri: {where} changed while it was being read; run the blast again")
        return AwsUnavailable(f"recipients_uri: S3 answered {code} reading {where}")
    return AwsUnavailable(f"recipients_uri: S3 could not be reached reading {where} ({type(error).__name__})")


class _ResumingBody(io.RawIOBase):
    """A raw stream over an S3 object's body that resumes a broken connection with a ranged GET pinned to
    the object's ETag (so a list replaced mid-read is an error, never a mix of two files)."""

    def __init__(self, client: Any, bucket: str, key: str, answer: dict[str, Any]) -> None:
        self._client = client
        self._bucket, self._key = bucket, key
        self._etag = answer.get("ETag")
        self._body = answer["Body"]
        self._position = 0
        self._retries = READ_RETRIES

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            try:
                data = self._body.read(len(buffer))
            except (BotoCoreError, OSError) as e:
                if self._retries <= 0:
                    raise _s3_error(e, f"s3://{self._bucket}/{self._key}") from e
                self._retries -= 1
                logger.warning("S3 read interrupted; resuming", extra={"byte": self._position})
                self._reopen()
                continue
            size = len(data)
            buffer[:size] = data
            self._position += size
            return size

    def _reopen(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key, "Range": f"bytes={self._position}-"}
        if self._etag:
            kwargs["IfMatch"] = self._etag
        try:
            self._body = self._client.get_object(**kwargs)["Body"]
        except (ClientError, BotoCoreError) as e:
            raise _s3_error(e, f"s3://{self._bucket}/{self._key}") from e

    def close(self) -> None:
        body = getattr(self, "_body", None)
        if body is not None:
            body.close()
        super().close()


class S3Source:
    """A RecipientSource over one S3 object. Opening it reads the object's first line (a CSV header is
    checked there), so a missing object, a denied read or a header without `email` refuses the blast
    before anything is sent."""

    def __init__(
        self,
        uri: str,
        *,
        client: Any = None,
        start_line: int | None = None,
        end_line: int | None = None,
    ) -> None:
        self.bucket, self.key, self.format = parse_s3_uri(uri)
        if start_line is not None and start_line < 1:
            raise InvalidEvent("start_line must be at least 1")
        if end_line is not None and end_line < (start_line or 1):
            raise InvalidEvent("end_line must not be before start_line")
        self.start_line = start_line or 1
        self.end_line = end_line
        self._client: Any = client if client is not None else boto3.client("s3", region_name=default_region())
        self.columns: list[str] = []
        self._text: io.TextIOWrapper | None = self._open()

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def count(self) -> int | None:
        """Unknown without reading the whole object."""
        return None

    def line_range(self) -> tuple[int, int]:
        """(first, last): the line numbers that may hold a recipient, for splitting the list into chunks of
        lines (`start_line`/`end_line`). Reads the object once more, streamed, parsing nothing; `last` is
        below `first` when the list has no recipient line."""
        text = self._open()
        last = 1 if self.format == "csv" else 0
        try:
            for number, _line in self._lines(text, whole=True):
                last = number
        finally:
            text.close()
        return (2 if self.format == "csv" else 1), last

    def close(self) -> None:
        if self._text is not None:
            self._text.close()
            self._text = None

    # --- reading ------------------------------------------------------------------------------------------
    def _open(self) -> io.TextIOWrapper:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except (ClientError, BotoCoreError) as e:
            raise _s3_error(e, self.where) from e
        raw = _ResumingBody(self._client, self.bucket, self.key, answer)
        # utf-8-sig drops a spreadsheet's byte-order mark; bad bytes become U+FFFD, so that line alone is
        # invalid; newline="" keeps line ends as they are for the CSV reader.
        text = io.TextIOWrapper(io.BufferedReader(raw, READ_BUFFER), encoding="utf-8-sig", errors="replace", newline="")
        if self.format == "csv":
            try:
                self.columns = self._header(text)
            except BaseException:
                text.close()
                raise
        return text

    def _header(self, text: io.TextIOWrapper) -> list[str]:
        line = text.readline(MAX_LINE_CHARS)
        if not line.strip():
            raise InvalidEvent(f"recipients_uri: {self.where} must start with a header row naming an email column")
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as e:
            raise InvalidEvent(f"recipients_uri: the header row of {self.where} is not valid CSV ({e})") from None
        columns = [cell.strip() for cell in cells]
        lowered = [c.lower() for c in columns]
        for number, name in enumerate(columns, 1):
            if not name:
                raise InvalidEvent(f"recipients_uri: column {number} of the header row of {self.where} has no name")
        special = {"email", "name"}
        seen: set[str] = set()
        for name, low in zip(columns, lowered, strict=True):
            ident = low if low in special else name
            if ident in seen:
                raise InvalidEvent(f"recipients_uri: the header row of {self.where} names column {name!r} twice")
            seen.add(ident)
        if "email" not in lowered:
            raise InvalidEvent(
                f"recipients_uri: the header row of {self.where} has no 'email' column (the first line must be "
                "a header row naming the columns: email, optionally name, then one column per var)"
            )
        return [low if low in special else name for name, low in zip(columns, lowered, strict=True)]

    def _lines(self, text: io.TextIOWrapper, *, whole: bool = False) -> Iterator[tuple[int, str | None]]:
        """(line number, line) for each line in range (every line if `whole`); None for a line too long."""
        number = 1 if self.format == "csv" else 0  # the header is line 1
        while True:
            line = text.readline(MAX_LINE_CHARS)
            if not line:
                return
            number += 1
            too_long = len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r"))
            if too_long:
                while True:  # skip the rest of it
                    more = text.readline(MAX_LINE_CHARS)
                    if not more or more.endswith(("\n", "\r")):
                        break
            if whole:
                pass
            elif self.end_line is not None and number > self.end_line:
                return
            elif number < self.start_line:
                continue
            yield number, None if too_long else line

    def entries(self) -> Iterator[Recipient | BadRecipient]:
        text = self._text if self._text is not None else self._open()
        self._text = None
        parse = self._csv_entry if self.format == "csv" else self._jsonl_entry
        try:
            for number, line in self._lines(text):
                if line is None:
                    yield BadRecipient(
                        email="", reason=f"line {number}: longer than {MAX_LINE_CHARS} characters", position=number
                    )
                    continue
                if not line.strip():
                    continue
                yield parse(line, number)
        finally:
            text.close()

    def _csv_entry(self, line: str, number: int) -> Recipient | BadRecipient:
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as e:
            return BadRecipient(email="", reason=f"line {number}: not valid CSV ({e})", position=number)
        if len(cells) > len(self.columns):
            return BadRecipient(
                email="",
                reason=f"line {number}: {len(cells)} cells but the header names {len(self.columns)} columns",
                position=number,
            )
        raw: dict[str, Any] = {"vars": {}}
        for column, cell in zip(self.columns, cells, strict=False):
            value = cell.strip()
            if not value:
                continue  # an empty cell is an absent value (the globals' default applies)
            if column in ("email", "name"):
                raw[column] = value
            else:
                raw["vars"][column] = value
        return _by_line(validate_entry(raw, number))

    def _jsonl_entry(self, line: str, number: int) -> Recipient | BadRecipient:
        try:
            raw = json.loads(line)
        except ValueError as e:
            where = f" (column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
            return BadRecipient(email="", reason=f"line {number}: not valid JSON{where}", position=number)
        return _by_line(validate_entry(raw, number))


def _by_line(entry: Recipient | BadRecipient) -> Recipient | BadRecipient:
    """validate_entry says `entry N:`; in a file, N is a line number: say so."""
    if isinstance(entry, BadRecipient):
        prefix = f"entry {entry.position}:"
        if entry.reason.startswith(prefix):
            entry = BadRecipient(
                email=entry.email,
                reason=f"line {entry.position}:{entry.reason[len(prefix) :]}",
                position=entry.position,
            )
    return entry
