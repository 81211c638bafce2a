"""Our exceptions. Adapters translate AWS errors into these; the handler maps them to `refused` codes."""

from __future__ import annotations


class SenderError(Exception):
    """Base of every error the sender raises on purpose."""

    code = "InternalError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


# --- The blast is refused before anything is sent -------------------------------------------------
class Refused(SenderError):
    """The blast cannot start: nothing was sent."""


class InvalidEvent(Refused):
    """The invoke payload does not match the contract."""

    code = "InvalidEvent"


class TemplateError(Refused):
    """A template is missing or does not compile."""

    code = "TemplateError"


class ConfigError(Refused):
    """The sender's configuration (secret or environment) is missing or invalid."""

    code = "ConfigError"


class IdentityNotVerified(Refused):
    """The From address has no SES identity verified for sending."""

    code = "IdentityNotVerified"


class DkimNotVerified(Refused):
    """The signing domain's DKIM is not verified, and the blast requires it."""

    code = "DkimNotVerified"


class SendingDisabled(Refused):
    """SES sending is disabled for the account."""

    code = "SendingDisabled"


class QuotaExceeded(Refused):
    """The blast needs more than what is left of the 24-hour sending quota."""

    code = "QuotaExceeded"


class AwsUnavailable(Refused):
    """An AWS call needed before sending failed (network, permissions, throttling past retries)."""

    code = "AwsError"


# --- Per-recipient problems ------------------------------------------------------------------------
class RecipientError(SenderError):
    """One recipient's data is bad (address, vars, rendering): that recipient alone is `invalid`."""

    code = "InvalidRecipient"


# --- SES answers while sending -------------------------------------------------------------------------
class SesError(SenderError):
    """An error answered by (or on the way to) SES, carrying SES's own error code."""

    retryable = False


class Throttled(SesError):
    """SES refused for rate: retry after backing off."""

    retryable = True


class TransientSesError(SesError):
    """A 5xx or a connection that failed before the request was sent: safe to retry."""

    retryable = True


class OutcomeUnknown(SesError):
    """The request may have reached SES but no answer came back: never retried (at most once)."""


class MessageRejected(SesError):
    """SES refused this one message for good (bad address, content): that recipient `failed`."""


class BlastFatal(SesError):
    """SES will refuse every further send (sending paused, account suspended...): stop the blast."""
