"""API tokens: random, shown once, stored only as a salted HMAC-SHA256 in a
small SQLite file, with a role, an optional rep (or manager) id and expiry.

A token reads ``si_<id>_<secret>``: the id finds the row, the secret is
checked in constant time. Tokens carry 256 random bits, so a fast hash is
enough (no password-stretching needed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROLES = ("rep", "manager", "leader", "data")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id TEXT PRIMARY KEY, salt BLOB NOT NULL, digest TEXT NOT NULL, role TEXT NOT NULL, rep_id TEXT,
    label TEXT, created_at TEXT NOT NULL, expires_at TEXT, revoked INTEGER NOT NULL DEFAULT 0);
"""


class TokenError(ValueError):
    """A token that cannot be created as asked."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's id, role and the rep or manager it speaks for."""

    token_id: str
    role: str
    rep_id: str | None


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TokenStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(self.path), timeout=10)
        con.executescript(_SCHEMA)
        return con

    def create(self, role: str, rep_id: str | None = None, expires_in: timedelta | None = None,
               label: str | None = None, now: datetime | None = None) -> tuple[str, Principal]:
        """A new token (the only time its text exists) and whom it speaks for."""
        if role not in ROLES:
            raise TokenError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        rep_id = (rep_id or "").strip() or None
        if role in ("rep", "manager") and not rep_id:
            raise TokenError(f"a {role} token needs --rep: the {role}'s id in dim_sales_reps")
        now = now or _now()
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        expires = (now + expires_in).isoformat() if expires_in is not None else None
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO tokens (token_id, salt, digest, role, rep_id, label, created_at, expires_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [token_id, salt, _digest(salt, secret), role, rep_id, label, now.isoformat(), expires])
        return f"si_{token_id}_{secret}", Principal(token_id, role, rep_id)

    def verify(self, token: str | None, now: datetime | None = None) -> Principal | None:
        """The principal of a valid, unexpired token; None otherwise."""
        if not token or not token.startswith("si_") or token.count("_") < 2:
            return None
        token_id, secret = token[3:].split("_", 1)
        if not self.path.exists():
            return None
        with closing(self._connect()) as con:
            row = con.execute("SELECT salt, digest, role, rep_id, expires_at, revoked FROM tokens "
                              "WHERE token_id = ?", [token_id]).fetchone()
        if row is None:
            return None
        salt, digest, role, rep_id, expires_at, revoked = row
        if not hmac.compare_digest(digest, _digest(salt, secret)) or revoked:
            return None
        if expires_at and datetime.fromisoformat(expires_at) <= (now or _now()):
            return None
        return Principal(token_id, role, rep_id)

    def revoke(self, token_id: str) -> bool:
        with closing(self._connect()) as con, con:
            return con.execute("UPDATE tokens SET revoked = 1 WHERE token_id = ?", [token_id]).rowcount == 1
