"""SES SMTP password derivation (the published vector), `blast smtp-password`, and the STARTTLS AUTH probe
against a local aiosmtpd server on 127.0.0.1 with a self-signed certificate made here."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sender import cli, smtp
from sender.smtp import derive_smtp_password, probe_smtp_auth, region_of_password

VECTOR_KEY = "some+secret+key"
VECTOR_PASSWORD = "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2"
USER = "AKIAEXAMPLEUSERNAME1"
PASSWORD = "BKV0cnVlLXBhc3N3b3JkLW5ldmVyLXNob3du"


# --- derivation ----------------------------------------------------------------------------------------
def test_derivation_matches_the_published_vector() -> None:
    assert derive_smtp_password(VECTOR_KEY, "eu-central-1") == VECTOR_PASSWORD


def test_the_password_depends_on_the_region() -> None:
    assert derive_smtp_password(VECTOR_KEY, "us-west-2") != derive_smtp_password(VECTOR_KEY, "us-east-1")


def test_the_region_a_password_was_derived_for_can_be_found() -> None:
    assert region_of_password(VECTOR_KEY, VECTOR_PASSWORD) == "eu-central-1"
    assert region_of_password("another-key", VECTOR_PASSWORD) is None


@pytest.mark.parametrize(("key", "region"), [("", "us-west-2"), ("k", "")])
def test_derivation_refuses_empty_inputs(key: str, region: str) -> None:
    with pytest.raises(ValueError):
        derive_smtp_password(key, region)


# --- `blast smtp-password` -----------------------------------------------------------------------------
@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("BLAST_LOG_TO_STDERR", "1")
    monkeypatch.delenv(smtp.IAM_KEY_ENV, raising=False)


def test_smtp_password_reads_the_key_from_stdin_and_prints_only_the_password(
    quiet_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(VECTOR_KEY + "\n"))
    assert cli.main(["smtp-password", "--region", "eu-central-1"]) == 0
    out, err = capsys.readouterr()
    assert out == VECTOR_PASSWORD + "\n"
    assert VECTOR_KEY not in out + err


def test_smtp_password_takes_the_key_from_the_environment(
    quiet_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(smtp.IAM_KEY_ENV, VECTOR_KEY)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli.main(["smtp-password", "--region", "eu-central-1"]) == 0
    assert capsys.readouterr().out.strip() == VECTOR_PASSWORD


def test_smtp_password_never_takes_the_key_from_the_command_line(
    quiet_cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["smtp-password", "--region", "eu-central-1", VECTOR_KEY])
    assert exit_.value.code == 2


def test_smtp_password_without_a_key_is_a_usage_error(
    quiet_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli.main(["smtp-password", "--region", "eu-central-1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert smtp.IAM_KEY_ENV in err


def test_smtp_password_refuses_a_region_that_is_not_one(
    quiet_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(VECTOR_KEY))
    assert cli.main(["smtp-password", "--region", "email-smtp.eu-central-1.amazonaws.com"]) == 2
    assert capsys.readouterr().out == ""


def test_smtp_password_warns_about_a_region_without_smtp_but_still_derives(
    quiet_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(VECTOR_KEY))
    assert cli.main(["smtp-password", "--region", "xx-nowhere-9"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == derive_smtp_password(VECTOR_KEY, "xx-nowhere-9")
    assert "not a region known" in err


# --- the AUTH probe ------------------------------------------------------------------------------------
@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


def make_tls(folder: Path) -> Tls:
    """A self-signed certificate for 127.0.0.1, and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return Tls(server, client)


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@dataclass
class Authenticator:
    """Accepts USER with `password`; records the mechanisms tried."""

    password: str = PASSWORD
    attempts: list[str] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        self.attempts.append(mechanism)
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    auth: Authenticator


def _serve(password: str = PASSWORD, **params: Any) -> Iterator[Server]:
    auth = Authenticator(password)
    controller = Controller(Sink(), hostname="127.0.0.1", port=_free_port(), authenticator=auth, **params)
    controller.start()
    try:
        yield Server(controller.port, auth)
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(tls: Tls) -> Iterator[Server]:
    yield from _serve(tls_context=tls.server, require_starttls=True, auth_require_tls=True)


@pytest.fixture
def plaintext_server() -> Iterator[Server]:
    yield from _serve(auth_require_tls=False)


@pytest.mark.integration
def test_probe_authenticates_after_starttls(starttls_server: Server, tls: Tls) -> None:
    result = probe_smtp_auth("127.0.0.1", starttls_server.port, USER, PASSWORD, timeout=5, ssl_context=tls.client)
    assert result.ok, result
    assert result.code == 235
    assert result.mechanism == "PLAIN"
    assert starttls_server.auth.attempts == ["PLAIN"]


@pytest.mark.integration
def test_probe_uses_auth_login_when_plain_is_not_offered(tls: Tls) -> None:
    for server in _serve(
        tls_context=tls.server, require_starttls=True, auth_require_tls=True, auth_exclude_mechanism=["PLAIN"]
    ):
        result = probe_smtp_auth("127.0.0.1", server.port, USER, PASSWORD, timeout=5, ssl_context=tls.client)
        assert result.ok, result
        assert result.mechanism == "LOGIN"


@pytest.mark.integration
def test_probe_reports_the_servers_refusal_with_its_code_and_message(starttls_server: Server, tls: Tls) -> None:
    result = probe_smtp_auth(
        "127.0.0.1", starttls_server.port, USER, "stale-password", timeout=5, ssl_context=tls.client
    )
    assert result.outcome == "auth_failed"
    assert result.code == 535
    assert "Authentication credentials invalid" in result.message
    assert "stale-password" not in repr(result) + result.describe()


@pytest.mark.integration
def test_probe_never_sends_credentials_without_starttls(plaintext_server: Server) -> None:
    result = probe_smtp_auth("127.0.0.1", plaintext_server.port, USER, PASSWORD, timeout=5)
    assert result.outcome == "no_starttls"
    assert plaintext_server.auth.attempts == []


@pytest.mark.integration
def test_probe_verifies_the_certificate_by_default(starttls_server: Server) -> None:
    result = probe_smtp_auth("127.0.0.1", starttls_server.port, USER, PASSWORD, timeout=5)
    assert result.outcome == "tls_error"
    assert starttls_server.auth.attempts == []


@pytest.mark.integration
def test_probe_reports_a_connection_error_when_nothing_listens() -> None:
    result = probe_smtp_auth("127.0.0.1", _free_port(), USER, PASSWORD, timeout=2)
    assert result.outcome == "connection_error"
    assert not result.ok


def test_scrub_removes_the_password_and_its_base64_forms() -> None:
    plain = smtp.base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    text = f"535 bad {PASSWORD} / {plain} / {smtp.base64.b64encode(PASSWORD.encode()).decode()}"
    scrubbed = smtp._scrub(text, (PASSWORD, plain))
    assert PASSWORD not in scrubbed
    assert plain not in scrubbed
    assert scrubbed.count("[redacted]") == 3
