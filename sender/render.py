"""Rendering: Jinja2 templates into one recipient's message, and that message into MIME bytes.

Pure: no I/O but reading templates once. Templates run in a SandboxedEnvironment with StrictUndefined;
HTML is autoescaped; recipient data is data (a name of `{{ 7*7 }}` stays literal, because values are
passed to templates, never compiled). Headers are built so no value can inject another header.
"""

from __future__ import annotations

import binascii
import email.errors
import re
import secrets
import threading
from dataclasses import dataclass
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sender.errors import RecipientError, TemplateError

PARTS = ("subject", "text", "html")
REQUIRED_PARTS = ("subject", "text")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACE = re.compile(r"\s+")
MAX_SUBJECT = 998  # RFC 5322 line limit; SES's own limit is larger
MAX_RAW_BYTES = 40 * 1024 * 1024  # SES v2 message size limit

_FOLD_AT = 78  # compat32 folds header lines longer than this


class _Policy(Compat32):
    """compat32, with a fast path for the common header: one ASCII line short enough that compat32's
    folding would return it unchanged (checked against compat32 itself in tests); others fold as before."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (
            type(value) is str
            and value.isascii()
            and len(name) + 2 + len(value) <= _FOLD_AT
            and "\r" not in value
            and "\n" not in value
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_POLICY = _Policy()


def one_line(value: str) -> str:
    """Fold any CR, LF, tab or other control character into single spaces: one header-safe line."""
    return _SPACE.sub(" ", _CONTROL.sub(" ", value)).strip()


def format_address(name: str | None, email: str) -> str:
    """`Name <email>`, with the name folded to one line and RFC 2047-encoded when not ASCII."""
    if "\r" in email or "\n" in email:
        raise RecipientError("address contains a line break")
    return formataddr((one_line(name) if name else "", email), charset="utf-8")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str | None


class Template:
    """One template folder, compiled once."""

    def __init__(self, name: str, parts: dict[str, jinja2.Template]) -> None:
        self.name = name
        self._parts = parts

    @property
    def has_html(self) -> bool:
        return "html" in self._parts

    def render(self, context: dict[str, Any]) -> Rendered:
        try:
            subject = one_line(self._parts["subject"].render(context))
            text = self._parts["text"].render(context)
            html = self._parts["html"].render(context) if "html" in self._parts else None
        except jinja2.UndefinedError as e:
            raise RecipientError(f"template {self.name!r}: {e.message}", code="MissingVariable") from None
        except jinja2.exceptions.SecurityError as e:
            raise RecipientError(f"template {self.name!r}: unsafe operation: {e}", code="TemplateRuntime") from None
        except Exception as e:  # noqa: BLE001 - a filter failing on one recipient's data fails that recipient alone
            raise RecipientError(f"template {self.name!r}: {type(e).__name__}: {e}", code="TemplateRuntime") from None
        if not subject:
            raise RecipientError(f"template {self.name!r}: the subject rendered empty", code="EmptySubject")
        if len(subject) > MAX_SUBJECT:
            raise RecipientError(f"template {self.name!r}: the subject is over {MAX_SUBJECT} characters")
        return Rendered(subject=subject, text=text, html=html)


class Renderer:
    """Loads templates by validated name from one folder only; each compiled once per process."""

    _cache: dict[tuple[str, str], Template] = {}
    _lock = threading.Lock()

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = Path(templates_dir)
        loader = jinja2.FileSystemLoader(str(self.templates_dir))
        self._text_env = ImmutableSandboxedEnvironment(
            loader=loader, undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        self._html_env = ImmutableSandboxedEnvironment(
            loader=loader, undefined=jinja2.StrictUndefined, autoescape=True, keep_trailing_newline=True
        )

    def load(self, name: str) -> Template:
        from sender.models import TEMPLATE_RE

        if not TEMPLATE_RE.fullmatch(name):
            raise TemplateError(f"template name {name!r} is not valid")
        key = (str(self.templates_dir.resolve()), name)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._compile(name)
                self._cache[key] = cached
            return cached

    def _compile(self, name: str) -> Template:
        folder = self.templates_dir / name
        if not folder.is_dir():
            raise TemplateError(f"template {name!r} not found in {self.templates_dir}")
        parts: dict[str, jinja2.Template] = {}
        for part in PARTS:
            if not (folder / f"{part}.j2").is_file():
                if part in REQUIRED_PARTS:
                    raise TemplateError(f"template {name!r} has no {part}.j2")
                continue
            env = self._html_env if part == "html" else self._text_env
            try:
                parts[part] = env.get_template(f"{name}/{part}.j2")
            except UnicodeDecodeError:
                raise TemplateError(f"template {name}/{part}.j2 is not UTF-8 text") from None
            except OSError as e:
                raise TemplateError(f"template {name}/{part}.j2 cannot be read: {e.strerror}") from None
            except jinja2.TemplateSyntaxError as e:
                raise TemplateError(f"template {name}/{part}.j2 line {e.lineno}: {e.message}") from None
            except jinja2.TemplateError as e:
                raise TemplateError(f"template {name}/{part}.j2: {e}") from None
        return Template(name, parts)

    @classmethod
    def clear_cache(cls) -> None:
        with cls._lock:
            cls._cache.clear()


def build_context(globals_: dict[str, Any], vars_: dict[str, Any], email: str, name: str | None) -> dict[str, Any]:
    """globals, then the recipient's vars (which win), then email and name (CONTRACT)."""
    context = dict(globals_)
    context.update(vars_)
    context["email"] = email
    context["name"] = name
    return context


def build_mime(**fields: Any) -> bytes:
    """The exact bytes SES will send (see `_build_mime`). Data that cannot be encoded (a lone surrogate in a
    name or a var, say) fails that one recipient as invalid rather than as a send that a re-run retries."""
    try:
        return _build_mime(**fields)
    except (UnicodeError, email.errors.MessageError) as e:
        raise RecipientError(f"the message cannot be encoded: {type(e).__name__}", code="Unencodable") from None


def _build_mime(
    *,
    from_name: str | None,
    from_email: str,
    to_name: str | None,
    to_email: str,
    rendered: Rendered,
    reply_to: tuple[str, ...] = (),
    list_unsubscribe: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """The exact bytes SES will send: multipart/alternative (text, then html) or text/plain alone.

    Built with the compat32 email classes (Python's default policy costs several times more per message),
    bodies quoted-printable encoded by binascii (in C) and the boundary chosen here rather than by a regex
    search of the body: "=_" cannot occur in quoted-printable text, so no part can contain the boundary.
    """
    text_part = _text_part(rendered.text, "plain")
    if rendered.html is not None:
        msg: MIMEMultipart | MIMENonMultipart = MIMEMultipart(
            "alternative",
            boundary=f"=_{secrets.token_hex(12)}",
            policy=_POLICY,  # Content-Type fits one line
        )
        msg.attach(text_part)
        msg.attach(_text_part(rendered.html, "html"))
    else:
        msg = text_part
    msg["From"] = format_address(from_name, from_email)
    msg["To"] = format_address(to_name, to_email)
    if reply_to:
        msg["Reply-To"] = ", ".join(reply_to)
    msg["Subject"] = _header(rendered.subject)
    msg["Date"] = formatdate(usegmt=True)
    if list_unsubscribe:
        msg["List-Unsubscribe"] = f"<{list_unsubscribe}>"
        if list_unsubscribe.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for key, value in (extra_headers or {}).items():
        msg[one_line(key)] = _header(value)
    data = msg.as_bytes(policy=_POLICY)
    if len(data) > MAX_RAW_BYTES:
        raise RecipientError(f"the message is {len(data)} bytes, over SES's {MAX_RAW_BYTES}", code="TooLarge")
    return data


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    """A text/* part in UTF-8, quoted-printable (line breaks normalised to LF, as compat32 did)."""
    part = MIMENonMultipart("text", subtype, policy=_POLICY, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    part.set_payload(binascii.b2a_qp(body, istext=True).decode("ascii"))
    return part


def _header(value: str) -> Any:
    value = one_line(value)
    if value.isascii():
        return value
    return Header(value, "utf-8")
