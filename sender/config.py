"""The sender's configuration: one Secrets Manager secret, parsed once and cached across warm invocations.

The secret is the single source of truth for the From identity and the SES SMTP credentials (the incident
behind this project was SMTP credentials that went stale in one of several places). No value read here is
ever logged, raised or returned: errors name keys, never values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from email_validator import EmailNotValidError, validate_email

from sender import log as _log  # noqa: F401 - quiets botocore's wire logging before any secret is read
from sender.errors import ConfigError
from sender.settings import default_region

SECRET_MAX_AGE_SECONDS = 300
# One URI that goes inside <...> in a header: printable ASCII without space, '<', '>' or ','.
UNSUBSCRIBE_URI = re.compile(r"(mailto:|https://)[\x21-\x2b\x2d-\x3b\x3d\x3f-\x7e]{1,1990}")
KNOWN_KEYS = frozenset(
    {
        "from_address",
        "reply_to",
        "configuration_set",
        "ses_region",
        "role_arn",
        "smtp_username",
        "smtp_password",
        "list_unsubscribe",
    }
)


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """What the secret says. `smtp_password` is excluded from repr so it cannot leak through a log."""

    from_name: str | None
    from_email: str
    reply_to: tuple[str, ...] = ()
    configuration_set: str | None = None
    ses_region: str | None = None
    role_arn: str | None = None
    smtp_username: str | None = field(default=None, repr=False)
    smtp_password: str | None = field(default=None, repr=False)
    list_unsubscribe: str | None = None

    @property
    def from_domain(self) -> str:
        return self.from_email.rsplit("@", 1)[1]

    @property
    def from_header(self) -> tuple[str | None, str]:
        return (self.from_name, self.from_email)

    @property
    def from_address(self) -> str:
        """The From as SES's FromEmailAddress wants it (display name included, RFC 2047 if needed)."""
        from sender.render import format_address  # local import: render imports nothing of ours at load

        return format_address(self.from_name, self.from_email)


def parse_config(raw: Any) -> SenderConfig:
    """Validate the secret's JSON object. Raise ConfigError naming the key, never the value."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigError("the secret is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ConfigError("the secret must be a JSON object")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"the secret has unknown key(s): {', '.join(unknown)}")

    def optional_str(key: str) -> str | None:
        value = raw.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"secret key {key!r} must be a string")
        return value

    from_value = optional_str("from_address")
    if from_value is None:
        raise ConfigError("secret key 'from_address' is required")
    name, email = _parse_from(from_value)

    reply_value = raw.get("reply_to", [])
    if isinstance(reply_value, str):
        reply_value = [reply_value]
    if not isinstance(reply_value, list) or not all(isinstance(r, str) for r in reply_value):
        raise ConfigError("secret key 'reply_to' must be a list of addresses")
    reply_to = []
    for item in reply_value:
        try:
            reply_to.append(validate_email(item, check_deliverability=False).normalized)
        except EmailNotValidError:
            raise ConfigError("secret key 'reply_to' holds an invalid address") from None

    role_arn = optional_str("role_arn")
    if role_arn is not None and not role_arn.startswith("arn:aws"):
        raise ConfigError("secret key 'role_arn' must be an IAM role ARN")
    unsubscribe = optional_str("list_unsubscribe")
    if unsubscribe is not None and not UNSUBSCRIBE_URI.fullmatch(unsubscribe):
        raise ConfigError(
            "secret key 'list_unsubscribe' must be one mailto: or https:// URI (no spaces, control characters, "
            "'<', '>' or ',', at most 2000 characters)"
        )
    username, password = optional_str("smtp_username"), optional_str("smtp_password")
    if (username is None) != (password is None):
        raise ConfigError("secret keys 'smtp_username' and 'smtp_password' go together")
    return SenderConfig(
        from_name=name,
        from_email=email,
        reply_to=tuple(reply_to),
        configuration_set=optional_str("configuration_set"),
        ses_region=optional_str("ses_region"),
        role_arn=role_arn,
        smtp_username=username,
        smtp_password=password,
        list_unsubscribe=unsubscribe,
    )


def _parse_from(value: str) -> tuple[str | None, str]:
    if "\r" in value or "\n" in value:
        raise ConfigError("secret key 'from_address' must be one line")
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        raise ConfigError("secret key 'from_address' must be one address, e.g. 'Name <user@example.com>'")
    name, address = pairs[0]
    try:
        email = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        raise ConfigError("secret key 'from_address' is not a valid address") from None
    return (name.strip() or None), email


class SecretStore:
    """Reads the secret through powertools' SecretsProvider, cached for SECRET_MAX_AGE_SECONDS."""

    def __init__(self, client: Any = None, *, max_age: int = SECRET_MAX_AGE_SECONDS) -> None:
        self._client = client if client is not None else boto3.client("secretsmanager", region_name=default_region())
        self._provider = parameters.SecretsProvider(boto3_client=self._client)
        self._max_age = max_age

    def load(self, secret_id: str | None, *, force: bool = False) -> SenderConfig:
        if not secret_id:
            raise ConfigError("SENDER_SECRET_ID is not set")
        try:
            value = self._provider.get(secret_id, max_age=self._max_age, force_fetch=force)
        except parameters.GetParameterError as e:
            # The message is botocore's (code and operation), which holds no secret value.
            raise ConfigError(f"cannot read secret {secret_id!r}: {_short(e)}") from None
        if isinstance(value, bytes):
            raise ConfigError(f"secret {secret_id!r} has no SecretString")
        return parse_config(value)

    def describe(self, secret_id: str) -> dict[str, Any]:
        """Metadata only (dates, rotation): used by `blast doctor`."""
        return dict(self._client.describe_secret(SecretId=secret_id))


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) <= 300 else text[:300] + "..."


_store: SecretStore | None = None


def load_config(secret_id: str | None) -> SenderConfig:
    """The cached config of this process (warm invocations reuse it until it is older than max age)."""
    global _store
    if _store is None:
        _store = SecretStore()
    return _store.load(secret_id)


def reset_cache() -> None:
    """Forget the cached client and values (tests; a new secret id)."""
    global _store
    _store = None
