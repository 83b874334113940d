"""Mail delivery: the outbox, the sender and a real SMTP server on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select, update

from imagestudio.config import Settings, parse_smtp_url
from imagestudio.db import Database
from imagestudio.mail import outbox
from imagestudio.mail.sender import deliver_due
from imagestudio.models import MailStatus, OutboxMail
from imagestudio.models.types import utcnow
from tests.mailserver import MailServer, free_port, html_of, text_of, to


def queue(database: Database, settings: Settings, address: str = "someone@example.test") -> OutboxMail:
    with database.writing() as db:
        return outbox.enqueue(
            db,
            settings,
            to_address=address,
            kind="password_reset",
            link="http://studio.test/reset-password#token=abc",
            email=address,
            expires_at=utcnow() + timedelta(hours=1),
        )


def row(database: Database, mail: OutboxMail) -> OutboxMail:
    with database.reading() as db:
        found = db.get(OutboxMail, mail.id)
        assert found is not None
        return found


def make_due(database: Database) -> None:
    """Let every retry delay pass."""
    with database.writing() as db:
        db.execute(update(OutboxMail).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_a_queued_mail_is_delivered_once_with_text_and_html(
    db: Database, mail_server: MailServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(smtp_url=mail_server.url, studio_name="Pixel Works", mail_from="Pixel <px@studio.test>")
    mail = queue(db, settings)

    assert deliver_due(db, settings).sent == 1
    assert deliver_due(db, settings).sent == 0  # nothing is sent twice

    [message] = mail_server.messages()
    assert message["To"] == "someone@example.test"
    assert message["From"] == "Pixel <px@studio.test>"
    assert "Pixel Works" in message["Subject"]
    assert "Pixel Works" in text_of(message)
    assert "http://studio.test/reset-password#token=abc" in text_of(message)
    html = html_of(message)
    assert 'href="http://studio.test/reset-password#token=abc"' in html
    # No tracking: no remote images, no other links than the reset link itself.
    assert "<img" not in html.lower()
    assert {part for part in html.split('"') if part.startswith("http")} == {
        "http://studio.test/reset-password#token=abc"
    }
    settled = row(db, mail)
    assert settled.status == MailStatus.sent and settled.sent_at is not None and settled.attempts == 1
    # The bodies held a single-use link: they are not kept once sent.
    assert settled.text_body == "" and settled.html_body == ""


def test_html_escapes_what_it_is_given(
    db: Database, mail_server: MailServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(smtp_url=mail_server.url, studio_name="<b>Studio</b>")
    queue(db, settings, address="x@example.test")
    deliver_due(db, settings)
    [message] = mail_server.messages()
    assert "&lt;b&gt;Studio&lt;/b&gt;" in html_of(message)
    assert "<b>Studio</b>" in text_of(message)


@pytest.mark.parametrize("reply", ["451 4.3.0 Try again later", "554 5.7.1 Rejected for now"])
def test_a_refusing_server_is_retried_with_backoff_and_nothing_is_lost(
    db: Database, mail_server: MailServer, make_settings: Callable[..., Settings], reply: str
) -> None:
    settings = make_settings(smtp_url=mail_server.url, mail_retry_seconds=60)
    mail = queue(db, settings)
    mail_server.refuse(reply, times=2)

    before = utcnow()
    assert deliver_due(db, settings).failed == 1
    failed_once = row(db, mail)
    assert failed_once.status == MailStatus.queued and failed_once.attempts == 1
    assert reply.split()[0] in (failed_once.last_error or "")
    # Not due again before its backoff, then twice the delay after the second failure.
    assert failed_once.next_attempt_at >= before + timedelta(seconds=60)
    assert deliver_due(db, settings).failed == 0 and mail_server.refused == 1

    make_due(db)
    before = utcnow()
    assert deliver_due(db, settings).failed == 1
    assert row(db, mail).next_attempt_at >= before + timedelta(seconds=120)

    make_due(db)
    assert deliver_due(db, settings).sent == 1
    assert len(mail_server.messages()) == 1 and mail_server.refused == 2
    settled = row(db, mail)
    assert settled.status == MailStatus.sent and settled.attempts == 3 and settled.last_error is None


def test_a_server_that_is_down_is_retried_until_it_is_back(
    db: Database, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()  # nothing listens here yet
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{port}")
    mail = queue(db, settings)
    assert deliver_due(db, settings).failed == 1
    down = row(db, mail)
    assert down.status == MailStatus.queued and "Connection" in (down.last_error or "")

    with MailServer(port=port) as server:
        make_due(db)
        assert deliver_due(db, settings).sent == 1
        server.wait_for(to("someone@example.test"), timeout=5)
    assert row(db, mail).status == MailStatus.sent


def test_attempts_run_out_into_failed_and_the_reason_is_kept(
    db: Database, mail_server: MailServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(smtp_url=mail_server.url, mail_max_attempts=2)
    mail = queue(db, settings)
    mail_server.refuse("550 5.1.1 No such mailbox", times=5)
    deliver_due(db, settings)
    make_due(db)
    deliver_due(db, settings)
    make_due(db)
    assert deliver_due(db, settings).failed == 0  # no attempts left: not tried again
    gone = row(db, mail)
    assert gone.status == MailStatus.failed and gone.attempts == 2
    assert "550" in (gone.last_error or "") and gone.text_body == ""
    assert mail_server.refused == 2


def test_a_sender_that_died_mid_send_is_replaced_after_its_claim_expires(
    db: Database, mail_server: MailServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(smtp_url=mail_server.url)
    mail = queue(db, settings)
    with db.writing() as session:
        claimed = outbox.claim_due(
            session, owner="dead", now=utcnow(), limit=10, claim_seconds=600, max_attempts=settings.mail_max_attempts
        )
    assert [item.id for item in claimed] == [mail.id]
    # While the claim lasts, nobody else sends it.
    assert deliver_due(db, settings).sent == 0
    with db.writing() as session:
        session.execute(update(OutboxMail).values(claim_expires_at=utcnow() - timedelta(seconds=1)))
    assert deliver_due(db, settings).sent == 1
    # The dead sender's late settle changes nothing.
    with db.writing() as session:
        assert not outbox.mark_sent(session, mail.id, owner="dead", now=utcnow())
    assert row(db, mail).attempts == 2 and len(mail_server.messages()) == 1


def test_two_senders_at_once_never_send_one_mail_twice(
    db: Database, mail_server: MailServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(smtp_url=mail_server.url)
    addresses = [f"reader{index}@example.test" for index in range(12)]
    for address in addresses:
        queue(db, settings, address)
    start = threading.Barrier(2)
    results = []

    def sender(owner: str) -> None:
        start.wait()
        results.append(deliver_due(db, settings, owner=owner))

    threads = [threading.Thread(target=sender, args=(f"sender-{index}",)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    while deliver_due(db, settings).sent:
        pass  # whatever a batch limit left behind
    received = sorted(message["To"] for message in mail_server.messages())
    assert received == sorted(addresses)
    with db.reading() as session:
        assert set(session.scalars(select(OutboxMail.status))) == {MailStatus.sent.value}


def test_the_server_login_is_used(db: Database, make_settings: Callable[..., Settings]) -> None:
    with MailServer(username="studio", password="s3cret/pass") as server:
        settings = make_settings(smtp_url=f"smtp://studio:s3cret%2Fpass@127.0.0.1:{server.port}")
        queue(db, settings)
        assert deliver_due(db, settings).sent == 1
        assert server.logins == ["studio"]
        wrong = make_settings(smtp_url=f"smtp://studio:wrong@127.0.0.1:{server.port}", smtp_timeout_seconds=1)
        mail = queue(db, wrong, "second@example.test")
        assert deliver_due(db, wrong).failed == 1
        refused = row(db, mail)
        assert refused.status == MailStatus.queued and refused.last_error
        assert [message["To"] for message in server.messages()] == ["someone@example.test"]


def test_without_smtp_nothing_is_sent(db: Database, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    mail = queue(db, settings)
    assert deliver_due(db, settings).sent == 0
    assert row(db, mail).attempts == 0


# --- the SMTP URL ---------------------------------------------------------------------------------


def test_smtp_urls_name_the_server_and_its_encryption() -> None:
    submission = parse_smtp_url("smtp://user%40corp:p%3Ass@mail.example.test:587")
    assert (submission.host, submission.port, submission.starttls, submission.implicit_tls) == (
        "mail.example.test",
        587,
        True,
        False,
    )
    assert (submission.username, submission.password) == ("user@corp", "p:ss")
    assert "p:ss" not in repr(submission)
    assert parse_smtp_url("smtp://relay.test?starttls=false").port == 25
    assert parse_smtp_url("smtp://relay.test:2525?starttls=true").starttls is True
    implicit = parse_smtp_url("smtps://relay.test")
    assert (implicit.port, implicit.implicit_tls, implicit.starttls) == (465, True, False)


@pytest.mark.parametrize(
    "url",
    [
        "http://relay.test",
        "smtp://",
        "smtp://relay.test?starttls=maybe",
        "smtp://relay.test?tls=true",
        "smtps://relay.test?starttls=true",
    ],
)
def test_malformed_smtp_urls_are_refused_at_start(make_settings: Callable[..., Settings], url: str) -> None:
    with pytest.raises(ValueError):
        make_settings(smtp_url=url)


# --- encryption -----------------------------------------------------------------------------------


@pytest.fixture
def loopback_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1, which this test's clients trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    # ssl.create_default_context() (what the sender uses) reads the trusted certificates from here.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_starttls_encrypts_before_sending(
    db: Database, make_settings: Callable[..., Settings], loopback_certificate: ssl.SSLContext
) -> None:
    with MailServer(tls_context=loopback_certificate, require_starttls=True) as server:
        plain = make_settings(smtp_url=f"smtp://127.0.0.1:{server.port}?starttls=false")
        refused = queue(db, plain, "plain@example.test")
        assert deliver_due(db, plain).failed == 1  # the server demands STARTTLS first
        assert "530" in (row(db, refused).last_error or "")
        settings = make_settings(smtp_url=f"smtp://127.0.0.1:{server.port}?starttls=true")
        with db.writing() as session:
            session.execute(update(OutboxMail).values(next_attempt_at=utcnow()))
        assert deliver_due(db, settings).sent == 1
        assert [message["To"] for message in server.messages()] == ["plain@example.test"]


def test_smtps_speaks_tls_from_the_start(
    db: Database, make_settings: Callable[..., Settings], loopback_certificate: ssl.SSLContext
) -> None:
    with MailServer(ssl_context=loopback_certificate) as server:
        settings = make_settings(smtp_url=f"smtps://127.0.0.1:{server.port}")
        queue(db, settings, "secure@example.test")
        assert deliver_due(db, settings).sent == 1
        assert [message["To"] for message in server.messages()] == ["secure@example.test"]
