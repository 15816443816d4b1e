"""API keys: ``Authorization: Bearer <key>`` with three scopes; also HTTP Basic with the key as the password (any
user name), since a browser cannot send a Bearer header when it navigates to a page.

- ``admin``  changes experiments; it also holds the other two scopes.
- ``ingest`` asks for assignments and sends events; meant to ship inside browsers and apps.
- ``read``   reads results.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request

from splitstream.errors import Forbidden, Unauthorized
from splitstream.settings import CommonSettings


class Scope(StrEnum):
    ADMIN = "admin"
    INGEST = "ingest"
    READ = "read"


_GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.ADMIN: frozenset(Scope),
    Scope.INGEST: frozenset({Scope.INGEST}),
    Scope.READ: frozenset({Scope.READ}),
}


@dataclass(frozen=True, slots=True)
class ApiKeys:
    by_scope: dict[Scope, str]

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ApiKeys:
        configured = {
            Scope.ADMIN: settings.admin_key,
            Scope.INGEST: settings.ingest_key,
            Scope.READ: settings.read_key,
        }
        missing = [scope.value for scope, key in configured.items() if key is None]
        if missing:
            raise ValueError(f"API keys not configured for scopes: {', '.join(missing)} "
                             "(set SPLITSTREAM_ADMIN_KEY, SPLITSTREAM_INGEST_KEY, SPLITSTREAM_READ_KEY)")
        return cls({scope: key.get_secret_value() for scope, key in configured.items() if key is not None})

    def scopes_of(self, presented: str) -> frozenset[Scope]:
        for scope, key in self.by_scope.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                return _GRANTS[scope]
        return frozenset()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a change, as the audit trail records it: the key's scope and a fingerprint, never the key."""

    scope: Scope
    key_id: str


def caller(request: Request) -> Caller:
    """The caller of a request that passed :func:`require` (so the key is known)."""
    keys: ApiKeys = request.app.state.api_keys
    token = bearer_token(request)
    granted = keys.scopes_of(token)
    scope = next((scope for scope in Scope if granted == _GRANTS[scope]), Scope.READ)
    return Caller(scope=scope, key_id=hashlib.blake2b(token.encode(), digest_size=4).hexdigest())


QUERY_KEY = "api_key"
"""``navigator.sendBeacon`` cannot set headers, so a key may come as ``?api_key=``; it then grants ingest at most
(an admin or read key must not travel in URLs, which end up in access logs)."""


def bearer_token(request: Request) -> str:
    token, _ = _presented(request.headers.get("authorization"), request.query_params.get(QUERY_KEY))
    return token


BASIC_CHALLENGE = 'Basic realm="SplitStream"'
"""``WWW-Authenticate`` of a page's 401: the browser asks for a user name and password; the password is the key."""


def _basic_password(credentials: str) -> str | None:
    """The password of HTTP Basic ``credentials`` (base64 of ``user:password``, RFC 7617), None if malformed."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def _presented(authorization: str | None, query_key: str | None) -> tuple[str, bool]:
    """The key a request presents, and whether it came in the query string."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    if scheme.lower() == "basic" and (password := _basic_password(token)) is not None:
        return password, False
    if not authorization and query_key:
        return query_key, True
    raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' (or Basic with the key as password)")


def _granted(request: Request) -> frozenset[Scope]:
    keys: ApiKeys = request.app.state.api_keys
    return granted_scopes(keys, request.headers.get("authorization"), request.query_params.get(QUERY_KEY))


def granted_scopes(keys: ApiKeys, authorization: str | None, query_key: str | None) -> frozenset[Scope]:
    """The scopes a request holds, from its ``Authorization`` header or else its ``?api_key=``."""
    token, from_query = _presented(authorization, query_key)
    granted = keys.scopes_of(token)
    return granted & {Scope.INGEST} if from_query else granted


def check_scope(granted: frozenset[Scope], scope: Scope) -> None:
    if not granted:
        raise Unauthorized("unknown API key")
    if scope not in granted:
        raise Forbidden(f"this API key lacks the '{scope.value}' scope")


def require(scope: Scope) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that lets the request through only with a key holding ``scope``.

    The keys are read from ``request.app.state.api_keys``, set by each service's ``create_app``.
    """

    async def check(request: Request) -> None:
        check_scope(_granted(request), scope)

    return check
