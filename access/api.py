"""Login for browsers and scripts, the signed-in user's own account, and (admin) users, tokens and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from access.guard import SESSION_COOKIE, PrincipalDep, client_address, require
from access.roles import ADMINS, Role
from access.service import AccessService

router = APIRouter(tags=["access"])


def get_access(request: Request) -> AccessService:
    return request.app.state.access


AccessDep = Annotated[AccessService, Depends(get_access)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Body):
    username: str = Field(max_length=100)
    password: str = Field(max_length=1024)


class MePublic(BaseModel):
    name: str
    kind: str
    roles: list[str]
    regions: list[str]
    departments: list[str]
    sources: list[str]
    csrf_token: str | None = Field(None, description="echo it in the X-CSRF-Token header of state-changing requests")


class PasswordChange(_Body):
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class UserCreate(_Body):
    username: str = Field(max_length=100)
    password: str = Field(max_length=1024)
    roles: list[str]
    regions: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)


class RolesChange(_Body):
    roles: list[str]


class TokenCreate(_Body):
    name: str = Field(max_length=100)
    role: str
    sources: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    expires_days: float | None = Field(None, gt=0, le=3650)


def _me(principal: Any) -> MePublic:
    return MePublic(name=principal.name, kind=principal.kind, roles=sorted(r.value for r in principal.roles),
                    regions=list(principal.regions), departments=list(principal.departments),
                    sources=list(principal.sources), csrf_token=principal.csrf)


def _secure(request: Request) -> bool:
    mode = request.app.state.access.config.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


@router.get("/login", include_in_schema=False, dependencies=[require(None)])
def login_page() -> FileResponse:
    from api.routes.web import WEB_DIR

    return FileResponse(WEB_DIR / "login.html", media_type="text/html; charset=utf-8")


@router.post("/api/auth/login", response_model=MePublic, dependencies=[require(None)])
def login(body: LoginRequest, request: Request, response: Response, access: AccessDep) -> MePublic:
    """Sets the session cookie (HttpOnly, SameSite=Strict); answers the user and the CSRF token."""
    session_id, principal = access.login(body.username, body.password, client_address(request))
    response.set_cookie(SESSION_COOKIE, session_id, max_age=int(access.config.session_hours * 3600), httponly=True,
                        samesite="strict", secure=_secure(request), path="/")
    return _me(principal)


@router.post("/api/auth/logout", dependencies=[require(set(Role))])
def logout(request: Request, response: Response, principal: PrincipalDep, access: AccessDep) -> dict[str, bool]:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal.kind == "user":
        access.logout(cookie, principal, client_address(request))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/api/auth/me", response_model=MePublic, dependencies=[require(set(Role))])
def me(principal: PrincipalDep) -> MePublic:
    return _me(principal)


@router.post("/api/auth/password", dependencies=[require(set(Role) - {Role.ingest})])
def change_password(body: PasswordChange, request: Request, principal: PrincipalDep, access: AccessDep) -> dict[str, bool]:
    access.change_password(principal, body.old_password, body.new_password, client_address(request))
    return {"ok": True}


admin = APIRouter(prefix="/api/access", tags=["access"], dependencies=[require(ADMINS)])


@admin.get("/users")
def list_users(access: AccessDep) -> dict[str, Any]:
    users = access.list_users()
    return {"data": users, "count": len(users)}


@admin.post("/users", status_code=201)
def create_user(body: UserCreate, principal: PrincipalDep, access: AccessDep) -> dict[str, Any]:
    user_id = access.create_user(body.username, body.roles, body.password, regions=body.regions,
                                 departments=body.departments, by=principal.actor)
    return {"id": user_id, "name": body.username}


@admin.put("/users/{name}/roles")
def set_roles(name: str, body: RolesChange, principal: PrincipalDep, access: AccessDep) -> dict[str, Any]:
    access.set_roles(name, body.roles, by=principal.actor)
    return {"name": name, "roles": sorted(body.roles)}


@admin.get("/tokens")
def list_tokens(access: AccessDep) -> dict[str, Any]:
    tokens = access.list_tokens()
    return {"data": tokens, "count": len(tokens)}


@admin.post("/tokens", status_code=201)
def create_token(body: TokenCreate, request: Request, principal: PrincipalDep, access: AccessDep) -> dict[str, Any]:
    """The token is in this answer only: store it now."""
    token_id, token = access.create_token(body.name, body.role, sources=body.sources, regions=body.regions,
                                          expires_days=body.expires_days, by=principal.actor,
                                          known_sources=request.app.state.service.config.sources.keys())
    return {"id": token_id, "name": body.name, "role": body.role, "token": token}


@admin.delete("/tokens/{token_id}")
def revoke_token(token_id: int, principal: PrincipalDep, access: AccessDep) -> dict[str, Any]:
    access.revoke_token(token_id, by=principal.actor)
    return {"id": token_id, "revoked": True}


@admin.get("/audit")
def audit_log(access: AccessDep, action: str | None = None, actor: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100, before_id: int | None = None) -> dict[str, Any]:
    data, count = access.list_audit(action=action, actor=actor, limit=limit, before_id=before_id)
    return {"data": data, "count": count, "next_cursor": str(data[-1]["id"]) if len(data) == limit else None}
