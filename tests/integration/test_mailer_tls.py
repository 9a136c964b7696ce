"""SmtpTransport over STARTTLS and implicit TLS with login, against aiosmtpd with a test certificate."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from smtp_sink import SinkHandler, free_port

from lupus_alerts import mailer


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    c, k = tmp / "cert.pem", tmp / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return c, k


class _Auth:
    def __init__(self) -> None:
        self.logins: list[tuple[str, bool]] = []

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"digest",
            b"s3cret",
        )
        self.logins.append((auth_data.login.decode(), bool(session.ssl)))
        # handled=False: let aiosmtpd send the 235/535 reply itself
        return AuthResult(success=ok, handled=False)


StartTlsServer = tuple[int, SinkHandler, _Auth]  # its port, the messages it took, the logins


@pytest.fixture
def server_ctx(tmp_path: Path) -> ssl.SSLContext:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@pytest.fixture
def starttls_server(server_ctx: ssl.SSLContext) -> Iterator[StartTlsServer]:
    handler, auth, port = SinkHandler(), _Auth(), free_port()
    c = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=auth,
        auth_required=True,
    )
    c.start()
    yield port, handler, auth
    c.stop()


def _msg() -> EmailMessage:
    m = EmailMessage()
    m["From"] = "digest@lupus-alerts.example.org"
    m["To"] = "reader@example.org"
    m["Subject"] = "over TLS"
    m.set_content("hello")
    return m


def test_starttls_then_login_then_send(starttls_server: StartTlsServer) -> None:
    port, handler, auth = starttls_server
    t = mailer.SmtpTransport(
        "127.0.0.1",
        port,
        use_tls=True,
        login="digest",
        password="s3cret",
        ssl_context=ssl._create_unverified_context(),
        timeout=5,
    )
    with t:
        assert t.send(_msg()).ok
        assert t.send(_msg()).ok
    assert len(handler.messages) == 2
    assert auth.logins == [("digest", True)]  # once, and only after TLS was up


def test_wrong_password_is_a_transport_error(starttls_server: StartTlsServer) -> None:
    port, handler, _ = starttls_server
    t = mailer.SmtpTransport(
        "127.0.0.1",
        port,
        use_tls=True,
        login="digest",
        password="nope",
        ssl_context=ssl._create_unverified_context(),
    )
    with pytest.raises(mailer.TransportError, match="login"):
        t.open()
    assert handler.messages == []


def test_certificate_is_verified_by_default(starttls_server: StartTlsServer) -> None:
    port, _, _ = starttls_server
    with pytest.raises(mailer.TransportError):
        mailer.SmtpTransport(
            "127.0.0.1", port, use_tls=True, login="digest", password="s3cret", timeout=5
        ).open()


def test_implicit_tls(server_ctx: ssl.SSLContext) -> None:
    handler, port = SinkHandler(), free_port()
    c = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    c.start()
    try:
        with mailer.SmtpTransport(
            "127.0.0.1", port, use_ssl=True, ssl_context=ssl._create_unverified_context(), timeout=5
        ) as t:
            assert t.send(_msg()).ok
    finally:
        c.stop()
    assert len(handler.messages) == 1
