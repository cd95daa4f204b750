"""Users, passwords, sessions and API keys: who is calling.

* Passwords: argon2id (`argon2-cffi`), never stored or logged in clear.
* Login throttling: `Settings.login_max_failures` failed logins per user name and client
  address within `Settings.login_window_minutes` answer 429 with Retry-After.
* Sessions (console and API): a signed, expiring token (JWT, HS256) naming a server-side
  session row; logout or revocation ends the row, so the token stops working at once.
* API keys (server to server): ``mk_<id>_<secret>``, shown once; only SHA-256 of the
  secret is kept (it is 256 random bits, so a fast hash is the right one).
* The workspace admin token (``secrets/admin.token``) is the CLI's admin API key.
* Collection write keys (``wk_...``) authenticate the collector only: `authenticate`
  refuses them everywhere else.
* `PrincipalCache`: the server remembers who a session token or API key names, so a request
  costs no store read. Revocation stays immediate: logout, key revocation and every user
  change name the session, key or user as *touched* (before their write, for the life of the
  process), and a touched one is always checked against the store again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mecdp.config import Settings
from mecdp.errors import AuthenticationError, Conflict, InputError, MeCdpError, NotFound
from mecdp.privacy.roles import Permission, Role, role_may

log = logging.getLogger("mecdp.privacy.auth")

USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,62}$")
MIN_PASSWORD = 10
API_KEY = re.compile(r"^mk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")
WRITE_KEY_PREFIX = "wk_"
_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal user names.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class TooManyAttempts(MeCdpError):
    """Login throttled: too many failures for this user name from this address."""

    status_code = 429
    code = "too_many_attempts"
    exit_code = 2

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    kind: str  # session, api_key, admin_token
    name: str  # user name, api key name or 'admin_token'
    role: Role
    store_code: str | None = None
    session_id: str | None = None
    key_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.kind == "api_key":
            return f"api_key:{self.key_id}"
        return self.name

    def may(self, permission: Permission) -> bool:
        return role_may(self.role, permission)

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "role": str(self.role),
            "store_code": self.store_code,
            "permissions": sorted(str(p) for p in Permission if self.may(p)),
        }


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# Sessions, API keys and users whose rows were written while this process runs: never
# answered from a `PrincipalCache` again (so a write inside a transaction not yet committed
# cannot be cached over). Revocations are rare; the sets stay small.
_touched_sessions: set[str] = set()
_touched_keys: set[str] = set()
_touched_users: set[str] = set()


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InputError(
            f"unknown role {role!r}; one of: {', '.join(r.value for r in Role)}",
            field="role",
            value=role,
            rule="user.role",
        ) from None


def _check_store(role: Role, store_code: str | None) -> None:
    if role is Role.CONSULTANT and not store_code:
        raise InputError(
            "a consultant needs the store_code of the store they serve",
            field="store_code",
            rule="user.store_code",
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"password must have at least {MIN_PASSWORD} characters",
            field="password",
            rule="user.password",
        )


# --------------------------------------------------------------------------- users


def add_user(
    cur: duckdb.DuckDBPyConnection,
    username: str,
    password: str,
    role: str,
    store_code: str | None = None,
) -> dict[str, Any]:
    if not USERNAME.match(username):
        raise InputError(
            "user name must be 2-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter",
            field="username",
            value=username,
            rule="user.username",
        )
    r = _role(role)
    _check_store(r, store_code)
    _check_password(password)
    if cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise Conflict(f"user {username!r} already exists", field="username", value=username)
    now = _now()
    cur.execute(
        "INSERT INTO users VALUES (?, ?, ?, ?, TRUE, ?, ?)",
        [username, r.value, store_code, _hasher.hash(password), now, now],
    )
    return get_user(cur, username)


def get_user(cur: duckdb.DuckDBPyConnection, username: str) -> dict[str, Any]:
    row = cur.execute(
        "SELECT username, role, store_code, active, created_at, updated_at FROM users "
        "WHERE username = ?",
        [username],
    ).fetchone()
    if row is None:
        raise NotFound(f"no user {username!r}", field="username", value=username)
    return _user_public(row)


def _user_public(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "username": row[0],
        "role": row[1],
        "store_code": row[2],
        "active": bool(row[3]),
        "created_at": row[4].isoformat() + "Z",
        "updated_at": row[5].isoformat() + "Z",
    }


def list_users(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT username, role, store_code, active, created_at, updated_at FROM users "
        "ORDER BY username"
    ).fetchall()
    return [_user_public(r) for r in rows]


def update_user(
    cur: duckdb.DuckDBPyConnection,
    username: str,
    *,
    role: str | None = None,
    store_code: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """Change role, store, active flag or password; role/active/password changes end sessions."""
    before = get_user(cur, username)
    _touched_users.add(username)
    new_role = _role(role) if role is not None else Role(before["role"])
    new_store = store_code if store_code is not None else before["store_code"]
    _check_store(new_role, new_store)
    sets: list[str] = ["role = ?", "store_code = ?", "updated_at = ?"]
    params: list[Any] = [new_role.value, new_store, _now()]
    if active is not None:
        sets.append("active = ?")
        params.append(active)
    if password is not None:
        _check_password(password)
        sets.append("password_hash = ?")
        params.append(_hasher.hash(password))
    cur.execute(f"UPDATE users SET {', '.join(sets)} WHERE username = ?", [*params, username])
    if role is not None or active is False or password is not None or store_code is not None:
        revoke_sessions(cur, username)
    return get_user(cur, username)


# --------------------------------------------------------------------------- login


def _signing_key(settings: Settings) -> bytes:
    return hmac.digest(settings.key(), b"mecdp-session-signing-v1", "sha256")


def check_throttle(
    cur: duckdb.DuckDBPyConnection, settings: Settings, username: str, ip: str
) -> None:
    window = timedelta(minutes=settings.login_window_minutes)
    row = cur.execute(
        "SELECT count(*), min(failed_at) FROM login_failures "
        "WHERE username = ? AND client_ip = ? AND failed_at > ?",
        [username, ip, _now() - window],
    ).fetchone()
    if row and int(row[0]) >= settings.login_max_failures:
        retry = max(1, int((row[1] + window - _now()).total_seconds()) + 1)
        raise TooManyAttempts(
            f"too many failed logins; try again in {retry} seconds", retry_after=retry
        )


def login(
    cur: duckdb.DuckDBPyConnection, settings: Settings, username: str, password: str, ip: str
) -> tuple[str, datetime, Principal]:
    """Check the password and open a session: (token, expires_at UTC, principal).

    Raises TooManyAttempts when throttled (checked before the password), else
    AuthenticationError with one message for unknown user, wrong password or disabled user.
    """
    check_throttle(cur, settings, username, ip)
    row = cur.execute(
        "SELECT password_hash, role, store_code, active FROM users WHERE username = ?",
        [username],
    ).fetchone()
    ok = False
    try:
        ok = _hasher.verify(str(row[0]) if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or not row[3]:
        cur.execute("INSERT INTO login_failures VALUES (?, ?, ?)", [username, ip, _now()])
        log.info("auth.login_failed")
        raise AuthenticationError("wrong user name or password")
    if _hasher.check_needs_rehash(str(row[0])):
        cur.execute(
            "UPDATE users SET password_hash = ? WHERE username = ?",
            [_hasher.hash(password), username],
        )
    cur.execute("DELETE FROM login_failures WHERE username = ? AND client_ip = ?", [username, ip])
    session_id = secrets.token_hex(16)
    now = _now()
    expires = now + timedelta(minutes=settings.session_ttl_minutes)
    cur.execute(
        "INSERT INTO sessions VALUES (?, ?, ?, ?, NULL)", [session_id, username, now, expires]
    )
    token = jwt.encode(
        {
            "sid": session_id,
            "sub": username,
            "iat": int(now.replace(tzinfo=UTC).timestamp()),
            "exp": int(expires.replace(tzinfo=UTC).timestamp()),
        },
        _signing_key(settings),
        algorithm="HS256",
    )
    log.info("auth.login_succeeded")
    principal = Principal("session", username, Role(str(row[1])), row[2], session_id=session_id)
    return token, expires, principal


def logout(cur: duckdb.DuckDBPyConnection, principal: Principal) -> bool:
    if principal.session_id is None:
        return False
    _touched_sessions.add(principal.session_id)
    cur.execute(
        "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
        [_now(), principal.session_id],
    )
    return True


def revoke_sessions(cur: duckdb.DuckDBPyConnection, username: str) -> None:
    _touched_users.add(username)
    cur.execute(
        "UPDATE sessions SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL",
        [_now(), username],
    )


# --------------------------------------------------------------------------- API keys


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create_api_key(
    cur: duckdb.DuckDBPyConnection,
    name: str,
    role: str,
    created_by: str,
    store_code: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Mint an API key: (the key, shown once; its public description)."""
    if not name or len(name) > 80:
        raise InputError("an API key needs a name (at most 80 characters)", field="name")
    r = _role(role)
    _check_store(r, store_code)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    cur.execute(
        "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        [key_id, name, r.value, store_code, _sha256(secret), created_by, _now()],
    )
    return f"mk_{key_id}_{secret}", get_api_key(cur, key_id)


def get_api_key(cur: duckdb.DuckDBPyConnection, key_id: str) -> dict[str, Any]:
    rows = _api_key_rows(cur, "WHERE key_id = ?", [key_id])
    if not rows:
        raise NotFound(f"no API key {key_id!r}", field="key_id", value=key_id)
    return rows[0]


def _api_key_rows(
    cur: duckdb.DuckDBPyConnection, where: str, params: list[Any]
) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT key_id, name, role, store_code, created_by, created_at, revoked_at "
        f"FROM api_keys {where} ORDER BY created_at",
        params,
    ).fetchall()
    return [
        {
            "key_id": r[0],
            "name": r[1],
            "role": r[2],
            "store_code": r[3],
            "created_by": r[4],
            "created_at": r[5].isoformat() + "Z",
            "revoked_at": r[6].isoformat() + "Z" if r[6] else None,
        }
        for r in rows
    ]


def list_api_keys(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _api_key_rows(cur, "", [])


def revoke_api_key(cur: duckdb.DuckDBPyConnection, key_id: str) -> dict[str, Any]:
    get_api_key(cur, key_id)
    _touched_keys.add(key_id)
    cur.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        [_now(), key_id],
    )
    return get_api_key(cur, key_id)


# --------------------------------------------------------------------------- authenticate


def authenticate(cur: duckdb.DuckDBPyConnection, settings: Settings, token: str) -> Principal:
    """The caller a bearer token names; AuthenticationError for anything else."""
    return _authenticate(cur, settings, token.strip())[0]


def _authenticate(
    cur: duckdb.DuckDBPyConnection, settings: Settings, token: str
) -> tuple[Principal, datetime | None]:
    """The caller and, for a session, when it ends."""
    if not token:
        raise AuthenticationError("authentication required (Authorization: Bearer <token>)")
    if token.startswith(WRITE_KEY_PREFIX):
        raise AuthenticationError("collection write keys can only send events to the collector")
    if token.startswith("mk_"):
        m = API_KEY.match(token)
        row = (
            cur.execute(
                "SELECT name, role, store_code, secret_sha256 FROM api_keys "
                "WHERE key_id = ? AND revoked_at IS NULL",
                [m.group(1)],
            ).fetchone()
            if m
            else None
        )
        if m is None or row is None or not hmac.compare_digest(str(row[3]), _sha256(m.group(2))):
            raise AuthenticationError("unknown or revoked API key")
        key = Principal("api_key", str(row[0]), Role(str(row[1])), row[2], key_id=m.group(1))
        return key, None
    try:
        admin = settings.admin_token()
    except FileNotFoundError:
        admin = ""
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Principal("admin_token", "admin_token", Role.ADMIN), None
    try:
        claims = jwt.decode(
            token, _signing_key(settings), algorithms=["HS256"], options={"require": ["exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError("the session expired; log in again") from None
    except jwt.PyJWTError:
        raise AuthenticationError("invalid token") from None
    row = cur.execute(
        "SELECT s.expires_at, s.revoked_at, u.role, u.store_code, u.active, u.username "
        "FROM sessions s JOIN users u USING (username) WHERE s.session_id = ?",
        [str(claims.get("sid", ""))],
    ).fetchone()
    if row is None or row[1] is not None or not row[4]:
        raise AuthenticationError("the session was ended; log in again")
    if row[0] <= _now():
        raise AuthenticationError("the session expired; log in again")
    session = Principal(
        "session", str(row[5]), Role(str(row[2])), row[3], session_id=str(claims["sid"])
    )
    # the token's own expiry (whole seconds) may come before the session row's
    token_end = datetime.fromtimestamp(int(claims["exp"]), UTC).replace(tzinfo=None)
    return session, min(row[0], token_end)


@dataclass(frozen=True, slots=True)
class _Known:
    principal: Principal
    expires_at: datetime | None  # a session's end


class PrincipalCache:
    """Who a token names, remembered by a server (see the module docstring); bounded."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._known: dict[str, _Known] = {}

    def cached(self, token: str) -> Principal | None:
        """The principal `token` names when that needs no store read, else None."""
        known = self._known.get(token)
        if known is None:
            return None
        p = known.principal
        if (
            (p.key_id is not None and p.key_id in _touched_keys)
            or (p.session_id is not None and p.session_id in _touched_sessions)
            or (p.kind == "session" and p.name in _touched_users)
            or (known.expires_at is not None and known.expires_at <= _now())
        ):
            self._known.pop(token, None)
            return None
        return p

    def authenticate(
        self, cur: duckdb.DuckDBPyConnection, settings: Settings, token: str
    ) -> Principal:
        """`authenticate`, answered from memory when it may be."""
        token = token.strip()
        found = self.cached(token)
        if found is not None:
            return found
        principal, expires_at = _authenticate(cur, settings, token)
        if principal.kind != "admin_token":  # the token file is read each time: rotation
            if len(self._known) >= self.max_entries:
                self._known.clear()
            self._known[token] = _Known(principal, expires_at)
        return principal
