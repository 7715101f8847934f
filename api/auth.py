"""Bearer-token authentication of the scoring service.

Callers send ``Authorization: Bearer <token>``. Tokens have names, so several can be valid at
once: to rotate, add the new token under a new name, move the callers over, remove the old
one and restart the service. Tokens come from the environment or from a file, never from
the command line (``ps`` shows every process's arguments to every user), and no token ever
goes into a log or an error message: only a token's *name* does.

* ``UPLIFT_API_TOKENS="shop:<token>,batch:<token>"``
* a file, ``--tokens-file PATH`` or ``UPLIFT_API_TOKENS_FILE=PATH``: one ``name:token`` per
  line; blank lines and lines starting with ``#`` are ignored.

A token is at least :data:`MIN_TOKEN_LENGTH` characters of printable ASCII without spaces or
commas (``python -c "import secrets; print(secrets.token_urlsafe(32))"`` makes one). Only the
SHA-256 of each token is kept; a presented token is hashed and compared with every stored
hash by :func:`hmac.compare_digest`, all of them every time, so the time taken shows neither
which token matched nor how long the presented one was.

:class:`BearerAuth` is the ASGI middleware: it answers 401 (with ``WWW-Authenticate``) before
the request body is read, leaves ``GET /health`` and the API docs open, and records the
caller's token name in the request scope (``SCOPE_CALLER``) for the request log.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping

from tasks.core.errors import ConfigError

log = logging.getLogger("uplift.api")

ENV_TOKENS = "UPLIFT_API_TOKENS"
ENV_TOKENS_FILE = "UPLIFT_API_TOKENS_FILE"
MIN_TOKEN_LENGTH = 16
SCOPE_CALLER = "uplift.caller"
REALM = "uplift-api"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no space
_HINT = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


@dataclass(frozen=True)
class ApiToken:
    """A named token; only its SHA-256 is kept, and it never prints."""

    name: str
    digest: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, name: str, secret: str) -> "ApiToken":
        return cls(name, hashlib.sha256(secret.encode("ascii")).digest())


def _entry(name: str, secret: str, where: str) -> ApiToken:
    """Validate one ``name:token`` entry; messages name the entry, never the token."""
    if not _NAME.match(name):
        raise ConfigError(f"{where}: token name {name[:64]!r} is not valid: use 1-64 letters, digits, '_', '-', '.'")
    if not secret:
        raise ConfigError(f"{where}: token {name!r} is empty; {_HINT}")
    if not _TOKEN.match(secret) or "," in secret:
        raise ConfigError(f"{where}: token {name!r} has characters other than printable ASCII "
                          f"(no spaces or commas); {_HINT}")
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}: token {name!r} has {len(secret)} characters; use at least "
                          f"{MIN_TOKEN_LENGTH}; {_HINT}")
    return ApiToken.from_secret(name, secret)


def parse_tokens(entries: Iterable[tuple[str, str]], source: str) -> tuple[ApiToken, ...]:
    """Tokens from ``(where, "name:token")`` pairs; :class:`ConfigError` names the bad entry."""
    tokens: list[ApiToken] = []
    for where, text in entries:
        name, sep, secret = text.strip().partition(":")
        if not sep:
            raise ConfigError(f"{source}, {where}: expected name:token, found no ':'")
        token = _entry(name.strip(), secret.strip(), f"{source}, {where}")
        if any(t.name == token.name for t in tokens):
            raise ConfigError(f"{source}, {where}: token name {token.name!r} is used twice")
        if any(hmac.compare_digest(t.digest, token.digest) for t in tokens):
            raise ConfigError(f"{source}, {where}: token {token.name!r} repeats another name's token")
        tokens.append(token)
    if not tokens:
        raise ConfigError(f"{source}: no tokens found; write one name:token per entry; {_HINT}")
    return tuple(tokens)


def tokens_from_text(text: str, source: str) -> tuple[ApiToken, ...]:
    """Parse the file format: one ``name:token`` per line, ``#`` comments, blank lines."""
    lines = [(f"line {i}", line) for i, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    return parse_tokens(lines, source)


def tokens_from_env_value(value: str) -> tuple[ApiToken, ...]:
    """Parse ``UPLIFT_API_TOKENS``: comma-separated ``name:token`` entries."""
    parts = [(f"entry {i}", p) for i, p in enumerate(value.split(","), 1) if p.strip()]
    return parse_tokens(parts, ENV_TOKENS)


def load_tokens(tokens_file: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> tuple[ApiToken, ...]:
    """The configured tokens (empty when none is configured).

    ``tokens_file`` (the ``--tokens-file`` option) or ``$UPLIFT_API_TOKENS_FILE`` names a file;
    ``$UPLIFT_API_TOKENS`` holds the entries themselves. Only one source may be used, so that
    removing a token from it really revokes the token.
    """
    env = os.environ if env is None else env
    path = tokens_file or env.get(ENV_TOKENS_FILE) or None
    value = env.get(ENV_TOKENS)
    if path and value is not None:
        raise ConfigError(f"tokens are configured twice ({ENV_TOKENS} and the file {path}); keep one source "
                          f"so that removing a token revokes it")
    if value is not None:
        return tokens_from_env_value(value)
    if not path:
        return ()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"tokens file {p} does not exist; write one name:token per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tokens file {p} cannot be read: {type(exc).__name__}: "
                          f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    try:
        if p.stat().st_mode & 0o077:
            log.warning("tokens file %s can be read by other users; chmod 600 it", p)
    except OSError:
        pass
    return tokens_from_text(text, f"tokens file {p}")


class TokenChecker:
    """Finds which named token a request presents, in time independent of the tokens."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self.tokens = tuple(tokens)
        if not self.tokens:
            raise ConfigError("TokenChecker needs at least one token")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tokens]

    def identify(self, authorization: str | None) -> str | None:
        """The name of the token in an ``Authorization: Bearer`` header value, or None."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        digest = hashlib.sha256(credentials.strip().encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for token in self.tokens:  # every token, every time: no early exit
            if hmac.compare_digest(digest, token.digest) and found is None:
                found = token.name
        return found


# ---------------------------------------------------------------------------- middleware
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


class BearerAuth:
    """ASGI middleware: 401 for requests without a valid token, the caller's name for the rest.

    ``checker`` None turns authentication off (a service on loopback without tokens). Open
    to all: ``GET``/``HEAD`` of ``open_paths`` and of paths under ``open_prefixes`` (the
    health check and the API docs, which hold no client data). With ``access_log`` every
    request is logged as one line with the caller's token name and the request id.
    ``stats["refused"]`` counts the requests answered 401.
    """

    def __init__(self, app: ASGIApp, checker: TokenChecker | None, open_paths: Iterable[str] = (),
                 open_prefixes: Iterable[str] = (), access_log: bool = False, stats: dict | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.checker = checker
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(open_prefixes)
        self.access_log = access_log
        self.clock = clock
        self.stats = stats if stats is not None else {"refused": 0}  # shared with /health
        self._refused_unlogged = 0
        self._last_warning = -float("inf")

    def _is_open(self, scope: dict) -> bool:
        path = scope.get("path", "")
        return scope.get("method") in ("GET", "HEAD") and (
            path in self.open_paths or any(path.startswith(p) for p in self.open_prefixes))

    def _note_refusal(self, scope: dict, presented: bool) -> None:
        self.stats["refused"] = self.stats.get("refused", 0) + 1
        self._refused_unlogged += 1
        now = self.clock()
        if now - self._last_warning >= 10.0:
            client = (scope.get("client") or ("?",))[0]
            log.warning("refused %d request(s) without a valid token since the last warning; latest: %s %s "
                        "from %s (%s)", self._refused_unlogged, scope.get("method"), scope.get("path"), client,
                        "wrong token" if presented else "no token")
            self._refused_unlogged = 0
            self._last_warning = now

    async def _unauthorized(self, send: Callable[[dict], Awaitable[None]], presented: bool) -> None:
        message = ("Authorization: the bearer token is not valid" if presented else
                   "Authorization: send the header 'Authorization: Bearer <token>'")
        body = json.dumps({"error": "unauthorized", "message": message, "field": "Authorization"},
                          separators=(",", ":")).encode()
        challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if presented else "")
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller = None
        if self.checker is not None:
            header = _header(scope, b"authorization")
            caller = self.checker.identify(header)
            if caller is None and not self._is_open(scope):
                self._note_refusal(scope, header is not None)
                if self.access_log:
                    self._log(scope, 401, None, None, 0.0)
                await self._unauthorized(send, header is not None)
                return
        scope[SCOPE_CALLER] = caller
        t0 = time.perf_counter()
        seen: dict[str, Any] = {"status": None, "request_id": None}

        async def tracking_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                if self.access_log:
                    for key, value in message.get("headers") or ():
                        if key.lower() == b"x-request-id":
                            seen["request_id"] = value.decode("latin-1")
            await send(message)
        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # the server is shutting down and its grace period is over (a client still sending
            # its body, say): answer 503 when nothing was sent yet and end quietly
            log.warning("%s %s cut short by shutdown", scope.get("method"), scope.get("path"))
            if seen["status"] is None:
                seen["status"] = 503
                body = b"{\"error\":\"shutting_down\",\"message\":\"the service is shutting down; retry\",\"field\":null}"
                try:
                    await send({"type": "http.response.start", "status": 503, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                except Exception:  # the connection may be gone already
                    pass
        finally:
            if self.access_log:
                self._log(scope, seen["status"] or 500, caller, seen["request_id"], time.perf_counter() - t0)

    def _log(self, scope: dict, status: int, caller: str | None, request_id: str | None, seconds: float) -> None:
        client = (scope.get("client") or ("-",))[0]
        log.info("%s %s %s %d caller=%s request_id=%s %.1fms", client, scope.get("method"), scope.get("path"),
                 status, caller or "-", request_id or "-", seconds * 1e3)
