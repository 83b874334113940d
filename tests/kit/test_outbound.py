"""Outbound clients share one verifying TLS context: loading the CA bundle once per process, not once
per client, is most of what building a container's six provider and language clients costs."""

from __future__ import annotations

import ssl

from imagestudio.config import load_settings
from imagestudio.kit.outbound import tls_context
from imagestudio.providers.a1111 import A1111Provider
from imagestudio.providers.setup import http_client


def _context_of(client: object) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


def test_the_shared_context_verifies_certificates_and_host_names() -> None:
    context = tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.cert_store_stats()["x509_ca"] > 0


def test_every_outbound_client_uses_the_one_context(tmp_path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first, second = http_client(settings), http_client(settings)
    own_client = A1111Provider("http://127.0.0.1:7860")._client
    assert _context_of(first) is _context_of(second) is _context_of(own_client) is tls_context()
