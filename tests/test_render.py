"""Rendering and MIME building are pure: tested without any AWS."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from sender.errors import RecipientError, TemplateError
from sender.render import Rendered, Renderer, build_context, build_mime, one_line

REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def write_template(root: Path, name: str, subject: str, text: str, html: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "subject.j2").write_text(subject)
    (folder / "text.j2").write_text(text)
    if html is not None:
        (folder / "html.j2").write_text(html)
    return root


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def mime(rendered: Rendered, to_name: str | None = "Ann", to_email: str = "ann@example.com") -> bytes:
    return build_mime(
        from_name="JADA Sailing", from_email="admin@queenofsandiego.com", to_name=to_name, to_email=to_email,
        rendered=rendered, reply_to=("bookings@queenofsandiego.com",),
    )


def test_bundled_template_renders_every_part(tmp_path: Path) -> None:
    template = Renderer(REPO_TEMPLATES).load("regatta-invite")
    context = build_context(
        {"regatta": "Spring", "event_date": "1 March", "boarding_time": "9:30", "dock": "C", "boat": "Jada",
         "booking_url": "https://x.example", "contact_email": "b@example.com"},
        {}, "ann@example.com", "Ann",
    )
    context["unsubscribe"] = None
    out = template.render(context)
    assert out.subject.startswith("Ann, you're invited")
    assert "unsubscribe" in out.text.lower() and out.html is not None and "unsubscribe" in out.html.lower()


def test_context_order_globals_then_vars_then_email_and_name() -> None:
    ctx = build_context({"boat": "G", "email": "x", "k": 1}, {"boat": "V"}, "ann@example.com", "Ann")
    assert ctx == {"boat": "V", "email": "ann@example.com", "k": 1, "name": "Ann"}


def test_html_is_autoescaped_and_text_is_not(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "Hi {{ name }}", "Hi {{ name }}", "<p>Hi {{ name }}</p>")
    out = Renderer(root).load("t").render(build_context({}, {}, "a@example.com", "<b>Ann</b> & co"))
    assert out.html == "<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co</p>"
    assert out.text == "Hi <b>Ann</b> & co"


def test_recipient_data_is_never_evaluated_as_a_template(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "{{ name }}", "{{ name }} {{ note }}")
    out = Renderer(root).load("t").render(build_context({}, {"note": "{% raw %}x"}, "a@example.com", "{{ 7*7 }}"))
    assert out.text == "{{ 7*7 }} {% raw %}x"
    assert "49" not in out.subject


def test_missing_variable_fails_that_recipient_with_the_name(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "Hi", "Your boat: {{ boat }}")
    with pytest.raises(RecipientError) as info:
        Renderer(root).load("t").render(build_context({}, {}, "a@example.com", None))
    assert "boat" in info.value.message and info.value.code == "MissingVariable"


def test_template_that_does_not_compile_is_a_template_error_naming_file_and_line(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "Hi", "line one\n{% if %}")
    with pytest.raises(TemplateError) as info:
        Renderer(root).load("t")
    assert "t/text.j2 line 2" in info.value.message


@pytest.mark.parametrize("missing", ["subject", "text"])
def test_template_without_a_required_part_is_refused(tmp_path: Path, missing: str) -> None:
    root = write_template(tmp_path, "t", "s", "t")
    (root / "t" / f"{missing}.j2").unlink()
    with pytest.raises(TemplateError, match=f"no {missing}.j2"):
        Renderer(root).load("t")


@pytest.mark.parametrize("name", ["../templates", "nope", "UPPER"])
def test_unknown_or_unsafe_template_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(TemplateError):
        Renderer(tmp_path).load(name)


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "x", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(RecipientError, match="unsafe"):
        Renderer(root).load("t").render(build_context({}, {}, "a@example.com", None))


def test_templates_are_compiled_once_per_process(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "s", "t")
    assert Renderer(root).load("t") is Renderer(root).load("t")


def test_subject_with_crlf_cannot_inject_a_header() -> None:
    rendered = Rendered(subject=one_line("Hello\r\nBcc: victim@example.com"), text="body", html=None)
    msg = parse(mime(rendered))
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Hello Bcc: victim@example.com"


def test_display_name_with_crlf_cannot_inject_a_header() -> None:
    rendered = Rendered(subject="Hi", text="body", html=None)
    raw = mime(rendered, to_name="Ann\r\nBcc: victim@example.com\r\nX-Evil: 1")
    msg = parse(raw)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw


def test_address_with_line_break_is_refused() -> None:
    with pytest.raises(RecipientError):
        mime(Rendered(subject="Hi", text="b", html=None), to_email="ann@example.com\r\nBcc: x@example.com")


def test_mime_is_multipart_alternative_with_utf8_parts_and_headers() -> None:
    rendered = Rendered(subject="Régate d'été ⛵", text="Bonjour Chloé", html="<p>Bonjour Chloé</p>")
    msg = parse(mime(rendered, to_name="Chloé"))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == "Bonjour Chloé"
    assert parts[1].get_content() == "<p>Bonjour Chloé</p>"
    assert msg["Subject"] == "Régate d'été ⛵"
    assert msg["To"].addresses[0].display_name == "Chloé"
    assert msg["Reply-To"] == "bookings@queenofsandiego.com"
    assert msg["Date"] is not None


def test_text_only_template_gives_text_plain() -> None:
    msg = parse(mime(Rendered(subject="Hi", text="plain", html=None)))
    assert msg.get_content_type() == "text/plain"


def test_list_unsubscribe_headers() -> None:
    raw = build_mime(
        from_name=None, from_email="a@example.com", to_name=None, to_email="b@example.com",
        rendered=Rendered("s", "t", None), list_unsubscribe="https://example.com/u?id=1",
    )
    msg = parse(raw)
    assert msg["List-Unsubscribe"] == "<https://example.com/u?id=1>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_subject_is_folded_to_one_line_by_the_template_layer(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "Hi {{ name }}\n\n", "x")
    out = Renderer(root).load("t").render(build_context({}, {}, "a@example.com", "Ann\r\nBcc: x@example.com"))
    assert "\n" not in out.subject and "\r" not in out.subject


def test_a_template_that_is_not_utf8_is_a_template_error(tmp_path: Path) -> None:
    root = write_template(tmp_path, "t", "x", "y")
    (root / "t" / "subject.j2").write_bytes("Régate".encode("latin-1"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        Renderer(root).load("t")


def test_data_that_cannot_be_encoded_fails_the_recipient_as_invalid() -> None:
    with pytest.raises(RecipientError) as info:
        mime(Rendered(subject="Hi", text="body \ud800", html=None))
    assert info.value.code == "Unencodable"
