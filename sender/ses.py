"""The SES v2 adapter: every SES call the sender makes, and SES's errors mapped to ours.

Who retries: botocore's own retries are switched off on this client (one attempt per call); tenacity
retries here (management calls) and in the pipeline (sends), so the two never multiply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from sender.errors import (
    BlastFatal,
    MessageRejected,
    OutcomeUnknown,
    SesError,
    Throttled,
    TransientSesError,
)
from sender.settings import default_region
from sender.throttle import Pacer

THROTTLE_CODES = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException"})
FATAL_CODES = frozenset(
    {
        "SendingPausedException",
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "AccessDeniedException",
        "AccessDenied",
        "NotFoundException",  # on send: the configuration set does not exist
        "ConfigurationSetDoesNotExistException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
PERMANENT_CODES = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})
DAILY_QUOTA = re.compile(r"daily (message )?quota", re.IGNORECASE)
MAX_PAGE_SIZE = 1000


def classify(error: Exception, *, idempotent: bool) -> SesError:
    """Map a botocore error to one of ours. `idempotent` calls may be retried after an unknown outcome."""
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code") or "Unknown")
        message = str(err.get("Message") or error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if DAILY_QUOTA.search(message):
            return BlastFatal(f"{code}: {message}", code="DailyQuotaExceeded")
        if code in THROTTLE_CODES or status == 429:
            return Throttled(message, code=code)
        if code in FATAL_CODES:
            return BlastFatal(message, code=code)
        if code in PERMANENT_CODES:
            return MessageRejected(message, code=code)
        if status == 503 or code == "ServiceUnavailable":
            return TransientSesError(message, code=code)  # refused before processing: safe to retry
        if status >= 500 or code in ("InternalFailure", "InternalServerError"):
            # The request reached SES and failed somewhere inside: it may still have been accepted.
            if idempotent:
                return TransientSesError(message, code=code)
            return OutcomeUnknown(f"SES answered {code} ({status}): {message}", code=code)
        return MessageRejected(message, code=code)
    if isinstance(error, NoCredentialsError | PartialCredentialsError | NoRegionError):
        # Nothing will work until someone fixes the configuration: no retry helps.
        return BlastFatal(f"{error} (check the AWS credentials and region this runs with)", code=type(error).__name__)
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        # The request never left: safe to retry.
        return TransientSesError(str(error), code=type(error).__name__)
    if isinstance(error, BotoCoreError):
        # Read timeouts, connections closed mid-response: SES may have accepted the message.
        if idempotent:
            return TransientSesError(str(error), code=type(error).__name__)
        return OutcomeUnknown(str(error), code=type(error).__name__)
    raise TypeError(f"not an AWS error: {type(error).__name__}")  # pragma: no cover


def client_config(pool_size: int = 10) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(10, pool_size),
        # SendEmail answers in ~50-120 ms. A call is given at most 13 s, so one started with RETRY_FLOOR_MS
        # of the invocation left (sender.pipeline) ends, answered or not, before Lambda stops the process.
        connect_timeout=3,
        read_timeout=10,
        tcp_keepalive=True,
    )


class SesAdapter:
    """Thread-safe (boto3 clients are). Management calls are paced and retried on 429; sends are not
    retried here: the pipeline owns their retries because each retry must also pass the rate limiter."""

    def __init__(
        self,
        client: Any = None,
        *,
        region: str | None = None,
        session: Any = None,
        pool_size: int = 10,
        pacer: Pacer | None = None,
        management_attempts: int = 6,
        management_wait: Any = None,
    ) -> None:
        if client is None:
            factory = session if session is not None else boto3
            client = factory.client("sesv2", region_name=region or default_region(), config=client_config(pool_size))
        self._client = client
        self._pacer = pacer if pacer is not None else Pacer()
        self._attempts = management_attempts
        self._wait = management_wait if management_wait is not None else wait_random_exponential(multiplier=0.5, max=8)

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    # --- management calls (about 1 request/s per account) ------------------------------------------
    def _management(self, call: Any, **kwargs: Any) -> dict[str, Any]:
        retrying = Retrying(
            retry=retry_if_exception_type((TransientSesError, Throttled)),
            wait=self._wait,
            stop=stop_after_attempt(self._attempts),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self._pacer.wait()
                try:
                    return dict(call(**kwargs))
                except (ClientError, BotoCoreError) as e:
                    raise classify(e, idempotent=True) from e
        raise AssertionError("unreachable")  # pragma: no cover

    def get_email_identity(self, identity: str) -> dict[str, Any] | None:
        """The identity's description, or None when SES does not know it."""
        try:
            return self._management(self._client.get_email_identity, EmailIdentity=identity)
        except BlastFatal as e:
            if e.code == "NotFoundException":
                return None
            raise

    def get_account(self) -> dict[str, Any]:
        return self._management(self._client.get_account)

    def get_suppressed_destination(self, email: str) -> dict[str, Any] | None:
        """The suppression entry for one address, or None when it is not suppressed."""
        try:
            answer = self._management(self._client.get_suppressed_destination, EmailAddress=email)
        except BlastFatal as e:
            if e.code == "NotFoundException":
                return None
            raise
        entry: dict[str, Any] = answer.get("SuppressedDestination", {})
        return entry

    def iter_suppressed_destinations(
        self, *, start_date: datetime | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Every entry of the account's suppression list (no botocore paginator exists: loop on NextToken)."""
        kwargs: dict[str, Any] = {"PageSize": min(page_size, MAX_PAGE_SIZE)}
        if start_date is not None:
            kwargs["StartDate"] = start_date
        while True:
            page = self._management(self._client.list_suppressed_destinations, **kwargs)
            yield from page.get("SuppressedDestinationSummaries", [])
            token = page.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token

    # --- sending ---------------------------------------------------------------------------------------
    def send(self, request: dict[str, Any]) -> str:
        """One SendEmail call, no retry. Returns SES's MessageId or raises one of our SesErrors."""
        try:
            answer = self._client.send_email(**request)
        except (ClientError, BotoCoreError) as e:
            raise classify(e, idempotent=False) from e
        return str(answer["MessageId"])


def tag_value(text: str) -> str:
    """Fit a value into SES's tag alphabet (letters, digits, '_' and '-')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:256] or "_"


def send_request(
    *,
    from_address: str,
    to_address: str,
    raw_message: bytes,
    configuration_set: str | None,
    tags: dict[str, str],
) -> dict[str, Any]:
    """The SendEmail arguments for one rendered message (pure: tests assert on the dict).

    The Destination names the one recipient explicitly, so nothing in the message headers can add another.
    """
    request: dict[str, Any] = {
        "FromEmailAddress": from_address,
        "Destination": {"ToAddresses": [to_address]},
        "Content": {"Raw": {"Data": raw_message}},
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    if tags:
        request["EmailTags"] = [{"Name": k, "Value": v} for k, v in tags.items()]
    return request
