"""The route guard: every API route names the roles it admits, and the app refuses to start when one does not.

Why a startup check rather than a default: a router added later (an extension, a new package) cannot be open by
accident — `check_every_route_guarded` names the route that forgot. Authentication is a bearer token
(`Authorization: Bearer yq_…`) or the session cookie; a cookie-authenticated request that changes state must echo the
session's CSRF token in `X-CSRF-Token` (a cross-site form cannot set a header), which also stops body-less POSTs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access.roles import Principal, Role
from core.errors import NotAuthenticated, PermissionDenied

logger = logging.getLogger(__name__)

SESSION_COOKIE = "yuqing_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCOPE_KEY = "yuqing.access"  # per-request dict the guard fills and the audit middleware reads


def _access(request: Request) -> Any:
    return request.app.state.access


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


@contextmanager
def audited_write(request: Request, store: Any, status: int) -> Iterator[Any]:
    """A write transaction on `store` that also holds this request's audit row (answered with `status`), which the
    middleware then does not write again: a push waits once for the write lock, not twice."""
    with store.write() as conn:
        yield conn
        principal = request.scope.get(_SCOPE_KEY, {}).get("principal")
        _access(request)._audit(conn, principal.actor if principal else "anonymous", "request",
                                f"{request.method} {request.url.path}", "ok" if status < 400 else "failed",
                                client_address(request), {"status": status})
    request.scope.setdefault(_SCOPE_KEY, {})["audited"] = True


def authenticate(request: Request) -> Principal | None:
    """The caller of this request, or None; a presented but invalid credential is an error, not anonymity."""
    access = _access(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NotAuthenticated("Authorization must be 'Bearer <token>'")
        principal = access.token(value.strip(), client_address(request))
        if principal is None:
            raise NotAuthenticated("token is unknown, expired or revoked")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = access.session(cookie)
        if principal is None:
            raise NotAuthenticated("session expired or invalid: log in again")
        return principal
    return None


def _record(request: Request, principal: Principal | None = None, denied: str | None = None) -> None:
    state = request.scope.setdefault(_SCOPE_KEY, {})
    if principal is not None:
        state["principal"] = principal
    if denied is not None:
        state["denied"] = denied


class Guard:
    """A dependency that admits callers holding one of `roles` (`roles=None`: anyone, no login)."""

    def __init__(self, roles: Iterable[Role] | None, *, csrf: bool = True) -> None:
        self.roles = frozenset(roles) if roles is not None else None
        self.csrf = csrf

    async def __call__(self, request: Request) -> Principal | None:
        # Async, so the guards of a request do not each take a trip through the thread pool; the caller is looked
        # up (a database read) there, once per request: a route's guard and its router's both check CSRF and roles.
        if self.roles is None:
            return None
        principal = request.scope.get(_SCOPE_KEY, {}).get("principal")
        if principal is None:
            try:
                principal = await run_in_threadpool(authenticate, request)
            except NotAuthenticated as exc:
                _record(request, denied=f"401 {exc.message}")
                raise
            if principal is None:
                _record(request, denied="401 no credentials")
                raise NotAuthenticated("log in (POST /api/auth/login) or send 'Authorization: Bearer <token>'")
            _record(request, principal)
        needs_csrf = self.csrf and principal.csrf is not None and request.method in UNSAFE
        if needs_csrf and request.headers.get(CSRF_HEADER) != principal.csrf:
            _record(request, denied="403 missing or wrong CSRF token")
            raise PermissionDenied(f"missing or wrong {CSRF_HEADER} header (GET /api/auth/me gives the token)")
        if not principal.has_any(self.roles):
            _record(request, denied="403 role")
            raise PermissionDenied(f"this needs one of the roles {sorted(r.value for r in self.roles)}")
        return principal


def require(roles: Iterable[Role] | None) -> Any:
    """`dependencies=[require(READERS)]` on a router or route; `require(None)` marks a deliberately open route."""
    return Depends(Guard(roles))


async def current_principal(request: Request) -> Principal:
    """The principal the route's guard admitted (routes that need to know who is asking: scoping, audit)."""
    principal = request.scope.get(_SCOPE_KEY, {}).get("principal")
    if principal is None:  # the guard runs first; this only happens on an open route
        raise NotAuthenticated("log in first")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def _guards(dependant: Any) -> list[Guard]:
    found = [d.call for d in dependant.dependencies if isinstance(d.call, Guard)]
    for sub in dependant.dependencies:
        found.extend(_guards(sub))
    return found


def api_routes(app: FastAPI) -> Iterator[tuple[str, set[str], Any]]:
    """(path, methods, dependant) of every API route as served, routers included by the app or by other routers
    (FastAPI ≥ 0.16x keeps included routers as `_IncludedRouter` entries; `iter_route_contexts` flattens them with
    the dependencies the include added)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, set(route.methods or ()), route.dependant
        return
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if dependant is not None and context.methods:
            yield context.path, set(context.methods), dependant


def unguarded_routes(app: FastAPI) -> list[str]:
    """`METHOD path` of every API route that has no Guard."""
    missing = []
    for path, methods, dependant in api_routes(app):
        if not _guards(dependant):
            missing.extend(f"{m} {path}" for m in sorted(methods))
    return missing


def check_every_route_guarded(app: FastAPI) -> None:
    missing = unguarded_routes(app)
    if missing:
        raise RuntimeError(f"routes without an access rule (add require(...) to the router): {missing}")


def route_roles(app: FastAPI) -> dict[str, frozenset[Role] | None]:
    """`METHOD path` → the roles it admits (the intersection of its guards; None = open), for tests and docs."""
    out: dict[str, frozenset[Role] | None] = {}
    for path, methods, dependant in api_routes(app):
        allowed: frozenset[Role] | None = None
        for guard in _guards(dependant):
            if guard.roles is not None:
                allowed = guard.roles if allowed is None else allowed & guard.roles
        for method in methods:
            out[f"{method} {path}"] = allowed
    return out


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class AccessMiddleware:
    """Allowed-hosts check (DNS rebinding), security headers, no server banner, and an audit row for every
    state-changing request and every refused one. Pure ASGI so live streams (SSE) pass through untouched."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str], audit: Callable[..., None]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.audit = audit

    def _allowed_host(self, value: str) -> bool:
        host = value.strip().lower()
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        elif host.count(":") == 1:
            host = host.rsplit(":", 1)[0]
        return "*" in self.allowed or host in self.allowed

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused before routing: a Host this service does not answer to, or a state-changing
        request sent by a page of another origin (a browser always sends Origin on those)."""
        headers = {k: v.decode("latin-1") for k, v in scope.get("headers", ()) if k in (b"host", b"origin")}
        if not self._allowed_host(headers.get(b"host", "")):
            return "host not allowed (access.allowed_hosts)"
        origin = headers.get(b"origin")
        if origin and scope.get("method") in UNSAFE and origin != "null":
            if not self._allowed_host(origin.split("://", 1)[-1].split("/", 1)[0]):
                return "cross-origin request refused"
        elif origin == "null" and scope.get("method") in UNSAFE:
            return "cross-origin request refused"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            status = 400 if refusal.startswith("host") else 403
            body = json.dumps({"ok": False, "status": status, "error": refusal, "errors": []}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": body})
            return
        state: dict[str, Any] = {}
        scope[_SCOPE_KEY] = state
        status_holder: dict[str, int] = {}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "")
            if (method in UNSAFE or "denied" in state) and not state.get("audited"):
                await run_in_threadpool(self._audit, scope, state, method, status_holder.get("status", 500))

    def _audit(self, scope: Scope, state: dict[str, Any], method: str, status: int) -> None:
        principal = state.get("principal")
        client = scope.get("client")
        try:
            self.audit(principal.actor if principal else "anonymous", "denied" if "denied" in state else "request",
                       f"{method} {scope.get('path', '')}", "ok" if status < 400 else "denied" if status in (401, 403)
                       else "failed", client[0] if client else "", {"status": status, **({"reason": state["denied"]}
                                                                                      if "denied" in state else {})})
        except Exception:  # noqa: BLE001 - a failing audit write must not turn a served response into an error
            logger.exception("audit write failed path=%s", scope.get("path"))
