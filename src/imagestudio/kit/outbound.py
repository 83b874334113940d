"""What every client the studio opens to another service (providers, language models) shares."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every outbound client of the process: loading the CA bundle is most
    of an httpx client's construction (tens of milliseconds, six clients per container), and an
    SSLContext may serve many connections at once. Same settings as httpx's default (certifi, or
    SSL_CERT_FILE / SSL_CERT_DIR from the environment)."""
    return httpx.create_ssl_context()
