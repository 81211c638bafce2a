"""Recipients: the inline list or an S3 file, validated and normalised one entry at a time (streamed).

Every entry of the input becomes either a Recipient or a BadRecipient (an `invalid` record naming the
position and the problem); nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from email_validator import EmailNotValidError, validate_email

from sender.models import BadRecipient, Recipient
from sender.render import one_line

MAX_NAME = 256
MAX_EMAIL = 320


def normalise_email(value: str) -> str:
    """The address SES will be given: syntax checked (no DNS), domain lower-cased and in ASCII (IDNA).

    SES does not support SMTPUTF8, so a non-ASCII local part is invalid.
    """
    result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    return str(result.ascii_email or result.normalized)


def validate_entry(raw: Any, position: int) -> Recipient | BadRecipient:
    """One entry of a recipient list: {"email": ..., "name": ..., "vars": {...}}."""
    if not isinstance(raw, dict):
        return BadRecipient(email="", reason=f"entry {position}: not an object", position=position)
    email = raw.get("email")
    if not isinstance(email, str) or not email.strip():
        return BadRecipient(email="", reason=f"entry {position}: 'email' is missing", position=position)
    shown = one_line(email)[:MAX_EMAIL]
    unknown = set(raw) - {"email", "name", "vars"}
    if unknown:
        return BadRecipient(
            email=shown, reason=f"entry {position}: unknown field(s) {', '.join(sorted(unknown))}", position=position
        )
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        return BadRecipient(email=shown, reason=f"entry {position}: 'name' must be a string", position=position)
    vars_ = raw.get("vars", {})
    if vars_ is None:
        vars_ = {}
    if not isinstance(vars_, dict) or not all(isinstance(k, str) for k in vars_):
        return BadRecipient(email=shown, reason=f"entry {position}: 'vars' must be an object", position=position)
    if len(email) > MAX_EMAIL or "\r" in email or "\n" in email:
        return BadRecipient(email=shown, reason=f"entry {position}: invalid address", position=position)
    try:
        normalised = normalise_email(email.strip())
    except EmailNotValidError as e:
        return BadRecipient(email=shown, reason=f"entry {position}: invalid address: {e}", position=position)
    if name is not None:
        name = one_line(name)[:MAX_NAME] or None
    return Recipient(email=normalised, name=name, vars=vars_, position=position)


class RecipientSource(Protocol):
    def entries(self) -> Iterator[Recipient | BadRecipient]: ...

    def count(self) -> int | None:
        """How many entries, when it is known (or cheap to learn) before streaming."""
        ...


class InlineSource:
    def __init__(self, items: Iterable[Any], *, start: int = 1) -> None:
        self._items = list(items)
        self._start = start

    def entries(self) -> Iterator[Recipient | BadRecipient]:
        for offset, raw in enumerate(self._items):
            yield validate_entry(raw, self._start + offset)

    def count(self) -> int | None:
        return len(self._items)


class Deduper:
    """Remembers the lower-cased addresses seen in this blast (the same address twice is sent once)."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def first_position(self, recipient: Recipient) -> int | None:
        """None when the address has no outcome yet in this blast; else the position that had it."""
        return self._first.get(recipient.key)

    def remember(self, recipient: Recipient) -> None:
        """The address has an outcome (sent, queued, suppressed, dry run...): later listings are duplicates.
        Not called for an invalid one (a missing variable, say), so a later, valid listing still goes out."""
        self._first.setdefault(recipient.key, recipient.position)
