"""The SQS adapter: enqueue a blast's chunks (SendMessageBatch, 10 at a time, failed entries retried)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sender.errors import AwsUnavailable
from sender.settings import default_region

BATCH = 10  # SQS's most entries per SendMessageBatch
MAX_BODY = 256 * 1024  # SQS's largest message
ROUNDS = 5


class EnqueueFailed(AwsUnavailable):
    """Some chunk messages were never enqueued; `sent` says how many were (those are live)."""

    def __init__(self, message: str, *, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


class ChunkQueue:
    def __init__(self, queue_url: str, *, client: Any = None, sleep: Any = time.sleep) -> None:
        self.queue_url = queue_url
        self._client = client if client is not None else boto3.client("sqs", region_name=default_region())
        self._sleep = sleep

    def send(self, bodies: list[dict[str, Any]]) -> int:
        """Enqueue every body (as JSON); return how many were sent. Raise EnqueueFailed (with how many were
        sent before) if some never were."""
        encoded = [json.dumps(body, separators=(",", ":"), default=str) for body in bodies]
        for text in encoded:
            if len(text.encode()) > MAX_BODY:
                raise EnqueueFailed(f"a chunk message is {len(text.encode())} bytes, over SQS's {MAX_BODY}", sent=0)
        sent = 0
        for start in range(0, len(encoded), BATCH):
            pending = {str(i): text for i, text in enumerate(encoded[start : start + BATCH], start)}
            for round_ in range(ROUNDS):
                try:
                    answer = self._client.send_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": key, "MessageBody": text} for key, text in pending.items()],
                    )
                except (ClientError, BotoCoreError) as e:
                    raise EnqueueFailed(f"cannot enqueue chunks on {self.queue_url}: {e}", sent=sent) from e
                for ok in answer.get("Successful", []):
                    pending.pop(ok["Id"], None)
                    sent += 1
                if not pending:
                    break
                self._sleep(min(2.0, 0.1 * 2**round_))
            if pending:
                raise EnqueueFailed(
                    f"{len(pending)} chunk message(s) could not be enqueued on {self.queue_url}", sent=sent
                )
        return sent
