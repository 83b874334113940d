"""What a request says about where it comes from: scheme, client address, origin, CSRF.

X-Forwarded-* headers are believed only when the direct peer is a configured trusted proxy;
anyone else could set them to anything.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def is_safe_method(method: str) -> bool:
    return method.upper() in SAFE_METHODS


def _is_trusted(host: str | None, settings: Settings) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in settings.trusted_proxy_networks)


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _forwarded_value(request: Request, name: str) -> str | None:
    """The first value of an X-Forwarded-* header, if the peer is a trusted proxy."""
    value = request.headers.get(name)
    if not value:
        return None
    return value.split(",")[0].strip() or None


def request_scheme(request: Request, settings: Settings) -> str:
    if _is_trusted(_peer(request), settings):
        forwarded = _forwarded_value(request, "x-forwarded-proto")
        if forwarded and forwarded.lower() in ("http", "https"):
            return forwarded.lower()
    return request.url.scheme


def is_secure(request: Request, settings: Settings) -> bool:
    return request_scheme(request, settings) == "https"


def client_address(request: Request, settings: Settings) -> str:
    """The client's address: behind trusted proxies, the nearest X-Forwarded-For hop that is not one of them."""
    peer = _peer(request) or "unknown"
    if not _is_trusted(peer, settings):
        return peer
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, settings):
            return hop
    return hops[0] if hops else peer


def _normalize_origin(scheme: str, host: str) -> str:
    scheme = scheme.lower()
    host = host.strip().lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(":" + default_port) and not host.endswith("]"):
        host = host[: -(len(default_port) + 1)]
    return f"{scheme}://{host}"


def request_origin(request: Request, settings: Settings) -> str:
    """The origin this request was addressed to, as a browser would write it in an Origin header."""
    host = request.headers.get("host", "")
    if _is_trusted(_peer(request), settings):
        host = _forwarded_value(request, "x-forwarded-host") or host
    return _normalize_origin(request_scheme(request, settings), host)


def _same_origin(origin: str, expected: str) -> bool:
    if "://" not in origin:
        return False
    scheme, host = origin.split("://", 1)
    return _normalize_origin(scheme, host.rstrip("/")) == expected


def check_csrf(request: Request, settings: Settings) -> None:
    """Reject a state-changing browser request that may have been forged by another site.

    A page on another site cannot add X-Requested-With without a CORS preflight (which we never
    grant), and the browser tells us where the request came from in Origin or Sec-Fetch-Site.
    """
    if is_safe_method(request.method):
        return
    headers = request.headers
    problem: str | None = None
    origin = headers.get("origin")
    fetch_site = headers.get("sec-fetch-site")
    if not headers.get("x-requested-with"):
        problem = "the X-Requested-With header is missing"
    elif origin is not None:
        if not _same_origin(origin, request_origin(request, settings)):
            problem = "the request comes from another origin"
    elif fetch_site is None:
        problem = "the request says neither its Origin nor Sec-Fetch-Site"
    if problem is None and fetch_site is not None and fetch_site.lower() != "same-origin":
        problem = "the request comes from another site"
    if problem:
        raise ApiError(403, "csrf_failed", f"Cross-site request refused: {problem}.")
