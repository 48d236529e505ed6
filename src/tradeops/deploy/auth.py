"""API keys and roles for the signal service.

A token is ``to_<key_id>_<secret>`` (``key_id``: 12 hex characters; ``secret``: ``secrets.token_urlsafe(32)``).
Only a random salt and ``pbkdf2_hmac(sha256, token, salt, ITERATIONS)`` are stored (as
``pbkdf2_sha256$<iterations>$<hex>``); the token itself is shown once, at creation, and never stored or logged.
Roles: ``reader`` (signals, models) < ``operator`` (also admin); a role allows every role below it.

``KeyVerifier`` pays the KDF once per token per process: a verified token is cached by its sha256 and its key is
re-checked for revocation at most every ``recheck_seconds``. Timestamps are UTC-aware.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tradeops.deploy.predlog import api_keys, utcnow
from tradeops.errors import UsageError

ROLES = ("reader", "operator")
TOKEN_PREFIX = "to_"
ITERATIONS = 200_000
_ALGO = "pbkdf2_sha256"


@dataclass(frozen=True)
class KeyInfo:
    """Who a verified token belongs to (never the token or its hash)."""

    key_id: str
    role: str
    name: str | None


def check_role(role: str) -> str:
    """``role`` if it is one of ``ROLES``, else a UsageError naming it."""
    if role not in ROLES:
        raise UsageError(f"[role] {role!r} is not a role; valid roles: {', '.join(ROLES)}")
    return role


def allows(info: KeyInfo | None, role: str) -> bool:
    """Whether a key with ``info`` may act as ``role`` (operator includes reader; ``None`` allows nothing)."""
    needed = ROLES.index(check_role(role))
    if info is None or info.role not in ROLES:
        return False
    return ROLES.index(info.role) >= needed


def hash_token(token: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """The stored form of ``token``: ``pbkdf2_sha256$<iterations>$<hex digest>``."""
    digest = hashlib.pbkdf2_hmac("sha256", token.encode("utf-8"), salt, iterations)
    return f"{_ALGO}${iterations}${digest.hex()}"


def _matches(token: str, salt_hex: str, stored: str) -> bool:
    """Constant-time check of ``token`` against a stored hash; a malformed stored hash never matches."""
    try:
        algo, iterations, expected = stored.split("$")
        if algo != _ALGO:
            return False
        computed = hash_token(token, bytes.fromhex(salt_hex), int(iterations)).split("$")[2]
    except ValueError:
        return False
    return hmac.compare_digest(computed.encode("ascii"), expected.encode("ascii"))


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token (``to_<key_id>_<secret>``), else ``None``."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or not key_id.isalnum():
        return None
    return key_id


def create_key(engine: sa.Engine, *, role: str, name: str | None = None) -> tuple[str, str]:
    """Create a key with ``role``; returns ``(key_id, token)``. The token is not stored: show it once."""
    check_role(role)
    key_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    row = {
        "id": key_id,
        "name": name,
        "role": role,
        "salt": salt.hex(),
        "hash": hash_token(token, salt),
        "created_at": utcnow(),
        "revoked_at": None,
    }
    with engine.begin() as conn:
        conn.execute(api_keys.insert().values(**row))
    return key_id, token


_PUBLIC = (api_keys.c.id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at, api_keys.c.revoked_at)


def list_keys(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every key, oldest first: id, name, role, created_at, revoked_at (never the salt or hash)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_PUBLIC).order_by(api_keys.c.created_at, api_keys.c.id))
        return [dict(r._mapping) for r in rows]


def revoke_key(engine: sa.Engine, key_id: str) -> dict[str, Any]:
    """Revoke ``key_id`` (revoking twice keeps the first time); returns the key as ``list_keys`` shows it.

    An unknown id is a UsageError naming it."""
    with engine.begin() as conn:
        # Write first (no read-then-write upgrade of a SQLite lock), then read back.
        conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        row = conn.execute(sa.select(*_PUBLIC).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise UsageError(f"[unknown_key] no API key with id {key_id!r} (see `tradeops keys list`)")
    return dict(row._mapping)


class KeyVerifier:
    """Verifies bearer tokens against ``api_keys``; thread-safe.

    The first ``verify`` of a token pays the KDF (~0.1 s); later ones are a dict lookup by sha256(token), with the
    key's revocation re-read from the database at most every ``recheck_seconds`` (a revoked key stops working within
    that time; ``invalidate()`` forgets every cached token at once).
    """

    def __init__(
        self, engine: sa.Engine, *, recheck_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self._cache: dict[bytes, tuple[KeyInfo, float]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget every verified token (the next verify of each pays the KDF and re-reads the key)."""
        with self._lock:
            self._cache.clear()

    def _load(self, key_id: str) -> sa.Row[Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()

    def verify(self, token: str) -> KeyInfo | None:
        """The key of ``token``, or ``None`` when it is malformed, unknown, wrong or revoked."""
        key_id = parse_token(token)
        if key_id is None:
            return None
        fingerprint = hashlib.sha256(token.encode("utf-8")).digest()
        now = self.clock()
        with self._lock:
            cached = self._cache.get(fingerprint)
        if cached is not None:
            info, checked_at = cached
            if now - checked_at < self.recheck_seconds:
                return info
            row = self._load(key_id)
            if row is None or row.revoked_at is not None:
                with self._lock:
                    self._cache.pop(fingerprint, None)
                return None
            with self._lock:
                self._cache[fingerprint] = (info, now)
            return info
        row = self._load(key_id)
        if row is None or row.revoked_at is not None or not _matches(token, row.salt, row.hash):
            return None
        info = KeyInfo(key_id=row.id, role=row.role, name=row.name)
        with self._lock:
            self._cache[fingerprint] = (info, now)
        return info

    @staticmethod
    def allows(info: KeyInfo | None, role: str) -> bool:
        """Same as the module-level ``allows``."""
        return allows(info, role)
