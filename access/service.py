"""Accounts, sessions, API tokens and the audit log, on the store's relational state.

Why hashes: a stolen database must not give anyone a way in. Passwords are argon2 hashes; session ids and API tokens
are 256-bit random strings stored as SHA-256 digests (a slow hash adds nothing to a random secret and would slow every
request). A token is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, update

from access import store as tables
from access.roles import Principal, Role, parse_roles
from core.config_access import AccessConfig
from core.errors import InputError, NotAuthenticated, NotFound
from storage.base import StateStore

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "yq_"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")
MIN_PASSWORD = 10
_TOKEN_USE_EVERY = 60.0  # seconds between `last_used` writes (and token-use audit rows) for one token
# A token's row is read again after this many seconds: a client sending many requests costs one read per second, and
# a token revoked elsewhere (`yuqing token revoke`, another instance) is refused within that second; a revocation
# through this service, and the token's expiry, take effect at once.
TOKEN_ROW_SECONDS = 1.0
_TOKEN_ROWS_KEPT = 1000  # tokens remembered at most (the cache is emptied when full)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(name: str, what: str = "name") -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or not set(name) <= _NAME_CHARS:
        raise InputError(f"{what} must be 1–100 characters of letters, digits, _ . - @",
                         errors=[{"loc": [what], "msg": "invalid"}])
    return name


def _roles(names: Iterable[str] | str) -> frozenset[Role]:
    try:
        return parse_roles(list(names) if not isinstance(names, str) else names)
    except ValueError as exc:
        raise InputError(str(exc), errors=[{"loc": ["roles"], "msg": str(exc)}]) from exc


class AccessService:
    """Users, sessions, tokens and the audit log; `clock` is injectable so lock-out and expiry are testable."""

    def __init__(self, store: StateStore, config: AccessConfig, *, clock: Callable[[], float] = time.time,
                 region_exists: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.region_exists = region_exists
        self.hasher = PasswordHasher()
        self._attempts: dict[str, deque[float]] = defaultdict(deque)  # address → recent login attempt times
        self._attempts_lock = threading.Lock()
        self._token_seen: dict[int, float] = {}
        self._token_rows: dict[str, tuple[float, Any, Principal]] = {}  # digest → (read at, row, its principal)

    # ---- users -------------------------------------------------------------------------------------------------
    def _scope(self, values: Iterable[str] | None, what: str) -> list[str]:
        out = [v.strip() for v in (values or []) if v and v.strip()]
        if what == "regions" and self.region_exists is not None:
            unknown = [v for v in out if not self.region_exists(v)]
            if unknown:
                raise InputError(f"region scope names no known region: {unknown}",
                                 errors=[{"loc": ["regions"], "msg": f"unknown region(s) {unknown}"}])
        return out

    def create_user(self, name: str, roles: Iterable[str] | str, password: str, *, regions: Iterable[str] = (),
                    departments: Iterable[str] = (), by: str = "cli") -> int:
        name = _check_name(name, "username")
        role_set = _roles(roles)
        self._check_password(password)
        regions_list = self._scope(regions, "regions")
        now = self.clock()
        with self.store.write() as conn:
            if conn.execute(select(tables.users.c.id).where(tables.users.c.name == name)).first():
                raise InputError(f"user {name!r} exists", errors=[{"loc": ["username"], "msg": "exists"}])
            user_id = conn.execute(insert(tables.users).values(
                name=name, password_hash=self.hasher.hash(password), roles=json.dumps(sorted(role_set)),
                regions=json.dumps(regions_list, ensure_ascii=False),
                departments=json.dumps(self._scope(departments, "departments"), ensure_ascii=False),
                disabled=False, failed_logins=0, created_ts=now, password_ts=now)).inserted_primary_key[0]
            self._audit(conn, by, "user_create", f"user:{name}", "ok", detail={"roles": sorted(role_set),
                                                                                "regions": regions_list})
        return int(user_id)

    def set_roles(self, name: str, roles: Iterable[str] | str, *, by: str) -> None:
        role_set = _roles(roles)
        with self.store.write() as conn:
            row = self._user_row(conn, name)
            conn.execute(update(tables.users).where(tables.users.c.id == row.id).values(roles=json.dumps(sorted(role_set))))
            self._audit(conn, by, "role_change", f"user:{name}", "ok",
                        detail={"from": json.loads(row.roles), "to": sorted(role_set)})

    def _check_password(self, password: str) -> None:
        if not isinstance(password, str) or len(password) < MIN_PASSWORD or len(password) > 1024:
            raise InputError(f"password must have {MIN_PASSWORD} to 1024 characters",
                             errors=[{"loc": ["password"], "msg": "too short or too long"}])

    def change_password(self, principal: Principal, old: str, new: str, address: str = "") -> None:
        if principal.kind != "user":
            raise InputError("tokens have no password")
        self._check_password(new)
        with self.store.write() as conn:
            row = conn.execute(select(tables.users).where(tables.users.c.id == principal.id)).first()
            wrong = row is None or not self._verify(row.password_hash, old)
            if wrong:  # recorded, and the error raised once this transaction is committed
                self._audit(conn, principal.actor, "password_change", principal.actor, "failed", address)
        if wrong:
            raise NotAuthenticated("current password is wrong")
        with self.store.write() as conn:
            conn.execute(update(tables.users).where(tables.users.c.id == row.id)
                         .values(password_hash=self.hasher.hash(new), password_ts=self.clock()))
            # Other sessions of this user end: a changed password is often a reaction to a leak.
            conn.execute(delete(tables.sessions).where(tables.sessions.c.user_id == row.id))
            self._audit(conn, principal.actor, "password_change", principal.actor, "ok", address)

    def list_users(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(select(tables.users).order_by(tables.users.c.name)).all()
        return [{"id": r.id, "name": r.name, "roles": json.loads(r.roles), "regions": json.loads(r.regions),
                 "departments": json.loads(r.departments), "disabled": bool(r.disabled),
                 "locked": bool(r.locked_until and r.locked_until > self.clock())} for r in rows]

    def _user_row(self, conn: Any, name: str) -> Any:
        row = conn.execute(select(tables.users).where(tables.users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return row

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # ---- login and sessions ------------------------------------------------------------------------------------
    def _rate_limited(self, address: str) -> bool:
        now = self.clock()
        with self._attempts_lock:
            recent = self._attempts[address]
            while recent and recent[0] < now - 60:
                recent.popleft()
            recent.append(now)
            return len(recent) > self.config.lockout.per_address_per_minute

    def login(self, username: str, password: str, address: str = "") -> tuple[str, Principal]:
        """A new session id (to put in the cookie) and its principal; NotAuthenticated on any failure, with the
        same message whether the user exists or not (no account enumeration)."""
        now = self.clock()
        if self._rate_limited(address):
            with self.store.write() as conn:
                self._audit(conn, f"anonymous:{username[:60]}", "login_failed", f"user:{username[:60]}", "denied",
                            address, {"reason": "too many attempts from this address"})
            raise NotAuthenticated("too many login attempts from this address; wait a minute")
        # Failures are recorded (counters, lock, audit) in a committed transaction before the error is raised.
        with self.store.write() as conn:
            outcome = self._check_login(conn, username or "", password or "", address, now)
            if isinstance(outcome, NotAuthenticated):
                failed = outcome
            else:
                failed = None
                row = outcome
                session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
                conn.execute(delete(tables.sessions).where(tables.sessions.c.expires_ts < now))
                conn.execute(insert(tables.sessions).values(digest=digest(session_id), user_id=row.id, csrf=csrf,
                                                            created_ts=now,
                                                            expires_ts=now + self.config.session_hours * 3600))
                self._audit(conn, f"user:{row.name}", "login", f"user:{row.name}", "ok", address)
        if failed is not None:
            raise failed
        return session_id, self._user_principal(row, csrf)

    def _check_login(self, conn: Any, username: str, password: str, address: str, now: float) -> Any:
        """The user's row when the password is right and the account open; else the error to raise (recorded)."""
        failure = NotAuthenticated("wrong username or password, or the account is locked")
        row = conn.execute(select(tables.users).where(tables.users.c.name == username[:100])).first()
        if row is None:
            self.hasher.hash(password or "x")  # the same work as a real check: timing does not tell who exists
            self._audit(conn, f"anonymous:{username[:60]}", "login_failed", "", "failed", address,
                        {"reason": "unknown user"})
            return failure
        if row.disabled or (row.locked_until is not None and row.locked_until > now):
            self._audit(conn, f"user:{row.name}", "login_failed", f"user:{row.name}", "denied", address,
                        {"reason": "disabled" if row.disabled else "locked"})
            return failure
        if not self._verify(row.password_hash, password):
            failed = row.failed_logins + 1
            lock = now + self.config.lockout.lock_minutes * 60 if failed >= self.config.lockout.attempts else None
            conn.execute(update(tables.users).where(tables.users.c.id == row.id)
                         .values(failed_logins=0 if lock else failed, locked_until=lock))
            self._audit(conn, f"user:{row.name}", "login_failed", f"user:{row.name}", "failed", address,
                        {"reason": "wrong password", "locked": lock is not None})
            return failure
        conn.execute(update(tables.users).where(tables.users.c.id == row.id).values(failed_logins=0, locked_until=None))
        return row

    def _user_principal(self, row: Any, csrf: str | None) -> Principal:
        return Principal(name=row.name, roles=frozenset(Role(r) for r in json.loads(row.roles)), kind="user",
                         id=row.id, regions=tuple(json.loads(row.regions)), departments=tuple(json.loads(row.departments)),
                         csrf=csrf)

    def session(self, session_id: str) -> Principal | None:
        if not session_id or len(session_id) > 200:
            return None
        now = self.clock()
        s, u = tables.sessions.c, tables.users.c
        with self.store.read() as conn:
            row = conn.execute(select(tables.users, s.csrf).join(tables.sessions, s.user_id == u.id)
                               .where(s.digest == digest(session_id), s.expires_ts > now, u.disabled.is_(False))).first()
        return self._user_principal(row, row.csrf) if row is not None else None

    def logout(self, session_id: str, principal: Principal, address: str = "") -> None:
        with self.store.write() as conn:
            conn.execute(delete(tables.sessions).where(tables.sessions.c.digest == digest(session_id)))
            self._audit(conn, principal.actor, "logout", principal.actor, "ok", address)

    # ---- API tokens ----------------------------------------------------------------------------------------------
    def create_token(self, name: str, role: str, *, sources: Iterable[str] = (), regions: Iterable[str] = (),
                     expires_days: float | None = None, by: str = "cli", known_sources: Iterable[str] | None = None,
                     ) -> tuple[int, str]:
        """(token id, the token itself — shown once, never stored)."""
        name = _check_name(name)
        (role_value,) = _roles([role])  # one role per token: an unknown name or a list is rejected here
        source_list = [s.strip() for s in sources if s and s.strip()]
        if role_value is Role.ingest and not source_list:
            raise InputError("an ingest token needs --source: the sources it may push to",
                             errors=[{"loc": ["sources"], "msg": "required for the ingest role"}])
        if known_sources is not None:
            unknown = sorted(set(source_list) - set(known_sources))
            if unknown:
                raise InputError(f"unknown source(s) {unknown}", errors=[{"loc": ["sources"], "msg": "unknown"}])
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        with self.store.write() as conn:
            token_id = conn.execute(insert(tables.tokens).values(
                name=name, digest=digest(token), role=role_value.value, sources=json.dumps(source_list),
                regions=json.dumps(self._scope(regions, "regions"), ensure_ascii=False), created_by=by,
                created_ts=now, expires_ts=now + expires_days * 86400 if expires_days else None)).inserted_primary_key[0]
            self._audit(conn, by, "token_create", f"token:{token_id}:{name}", "ok",
                        detail={"role": role_value.value, "sources": source_list})
        return int(token_id), token

    def token(self, token: str, address: str = "") -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = self.clock()
        key = digest(token)
        cached = self._token_rows.get(key)
        if cached is not None and 0 <= now - cached[0] < TOKEN_ROW_SECONDS:
            _read, row, principal = cached
        else:
            row, principal = self._token_row(key), None
            if row is not None:
                principal = Principal(name=row.name, roles=frozenset({Role(row.role)}), kind="token", id=row.id,
                                      regions=tuple(json.loads(row.regions)), sources=tuple(json.loads(row.sources)))
                if len(self._token_rows) >= _TOKEN_ROWS_KEPT:
                    self._token_rows = {}
                self._token_rows[key] = (now, row, principal)
        if row is None or row.revoked_ts is not None or (row.expires_ts is not None and row.expires_ts <= now):
            return None
        if now - self._token_seen.get(row.id, 0.0) >= _TOKEN_USE_EVERY:
            self._token_seen[row.id] = now
            with self.store.write() as conn:
                conn.execute(update(tables.tokens).where(tables.tokens.c.id == row.id).values(last_used_ts=now))
                self._audit(conn, f"token:{row.id}:{row.name}", "token_use", "", "ok", address)
        return principal

    def _token_row(self, key: str) -> Any:
        with self.store.read() as conn:
            return conn.execute(select(tables.tokens).where(tables.tokens.c.digest == key)).first()

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(select(tables.tokens).order_by(tables.tokens.c.id)).all()
        now = self.clock()
        return [{"id": r.id, "name": r.name, "role": r.role, "sources": json.loads(r.sources),
                 "regions": json.loads(r.regions), "created_by": r.created_by, "created_ts": r.created_ts,
                 "expires_ts": r.expires_ts, "last_used_ts": r.last_used_ts, "revoked": r.revoked_ts is not None,
                 "active": r.revoked_ts is None and (r.expires_ts is None or r.expires_ts > now)} for r in rows]

    def revoke_token(self, token_id: int, *, by: str) -> None:
        with self.store.write() as conn:
            row = conn.execute(select(tables.tokens).where(tables.tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"no token {token_id}")
            if row.revoked_ts is None:
                conn.execute(update(tables.tokens).where(tables.tokens.c.id == token_id).values(revoked_ts=self.clock()))
            self._audit(conn, by, "token_revoke", f"token:{token_id}:{row.name}", "ok")
        self._token_seen.pop(token_id, None)
        self._token_rows = {k: v for k, v in self._token_rows.items() if v[1].id != token_id}

    # ---- audit -------------------------------------------------------------------------------------------------------
    def _audit(self, conn: Any, actor: str, action: str, target: str, outcome: str, address: str = "",
               detail: dict[str, Any] | None = None) -> None:
        conn.execute(insert(tables.audit).values(ts=self.clock(), actor=actor[:120], action=action, target=target[:300],
                                                 outcome=outcome, address=address[:60],
                                                 detail=json.dumps(detail or {}, ensure_ascii=False)))

    def audit(self, actor: str, action: str, target: str, outcome: str, address: str = "",
              detail: dict[str, Any] | None = None) -> None:
        with self.store.write() as conn:
            self._audit(conn, actor, action, target, outcome, address, detail)

    def list_audit(self, *, action: str | None = None, actor: str | None = None, limit: int = 100,
                   before_id: int | None = None) -> tuple[list[dict[str, Any]], int]:
        a = tables.audit.c
        conditions = []
        if action:
            conditions.append(a.action == action)
        if actor:
            conditions.append(a.actor == actor)
        with self.store.read() as conn:
            count = conn.execute(select(func.count()).select_from(tables.audit).where(*conditions)).scalar_one()
            if before_id is not None:
                conditions.append(a.id < before_id)
            rows = conn.execute(select(tables.audit).where(*conditions).order_by(a.id.desc()).limit(limit)).all()
        return [{"id": r.id, "ts": r.ts, "actor": r.actor, "action": r.action, "target": r.target, "outcome": r.outcome,
                 "address": r.address, "detail": json.loads(r.detail)} for r in rows], int(count)

    def has_users(self) -> bool:
        with self.store.read() as conn:
            return conn.execute(select(tables.users.c.id).limit(1)).first() is not None
