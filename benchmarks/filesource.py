"""A local CSV recipient source for the memory benchmark, streamed one row at a time.

Same CSV rules as an S3 list (CONTRACT): a header row; `email` and `name` are taken as such and every
other column becomes a var. Positions are line numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sender.models import BadRecipient, Recipient
from sender.recipients import validate_entry


class LocalCsvSource:
    def __init__(self, path: Path) -> None:
        self._path = path

    def entries(self) -> Iterator[Recipient | BadRecipient]:
        with self._path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                email = row.pop("email", None)
                name = row.pop("name", None) or None
                yield validate_entry({"email": email, "name": name, "vars": row}, reader.line_num)

    def count(self) -> int | None:
        return None  # unknown until read, as for a streamed S3 object


class LocalObjectClient:
    """Just enough of an S3 client for S3Source to stream a local file: get_object, whole or ranged."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None, IfMatch: str | None = None) -> Any:
        body = self._path.open("rb")
        if Range:
            body.seek(int(Range.removeprefix("bytes=").split("-")[0]))
        return {"Body": body, "ETag": '"local"'}


def open_local_csv(path: Path) -> tuple[Any, str]:
    """The source to stream `path` through, and what kind it is: the real S3Source over a local file when
    this build has it (its parsing and buffering are what we measure), else LocalCsvSource."""
    try:
        from sender.s3lists import S3Source
    except ImportError:
        return LocalCsvSource(path), "local-csv"
    return S3Source("s3://bench-lists/list.csv", client=LocalObjectClient(path)), "S3Source over a local file"


def write_csv(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "seats"])
        for i in range(n):
            writer.writerow([f"member{i}@example.com", f"Member {i}", str(1 + i % 4)])
    return path
