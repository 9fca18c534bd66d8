"""Puts access control on a FastAPI app: the middleware, the auth routers, guarded docs, and the startup check."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from access import store as _tables  # noqa: F401 - registers the `access` migration chain
from access.api import admin, router
from access.guard import AccessMiddleware, check_every_route_guarded, require
from access.roles import READERS
from access.service import AccessService
from core.config import Config
from storage.base import StateStore


def known_regions(config: Config) -> set[str]:
    """Region names a scope may use: the gazetteer's, the configured places and the sources' regions."""
    from analysis.gazetteer import REGIONS_FILE, read_names

    names = set(read_names(REGIONS_FILE)) | set(config.analysis.keywords.places)
    names |= {s.region for s in config.sources.values() if s.region}
    return names


def open_access(store: StateStore, config: Config) -> AccessService:
    """The access service on `store`, its tables migrated (CLI and app alike)."""
    store.migrate()  # the `access` chain registered when this module imported access.store
    regions: set[str] | None = None

    def region_exists(name: str) -> bool:
        nonlocal regions
        if regions is None:
            regions = known_regions(config)
        return name in regions or any(name in r for r in regions if len(name) >= 2)

    return AccessService(store, config.access, region_exists=region_exists)


def install_access(app: FastAPI, access: AccessService) -> None:
    """Call after every router is included: the startup check sees them all."""
    app.state.access = access
    app.include_router(router)
    app.include_router(admin)
    if access.config.docs == "login":
        @app.get("/openapi.json", include_in_schema=False, dependencies=[require(READERS)])
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

        # Served from local assets (api/routes/web.py install_docs), started by a script file: no CDN, no inline script.
        @app.get("/docs", include_in_schema=False, dependencies=[require(READERS)])
        def docs() -> HTMLResponse:
            return HTMLResponse(_docs_page("docs.html"))

        @app.get("/redoc", include_in_schema=False, dependencies=[require(READERS)])
        def redoc() -> HTMLResponse:
            # ReDoc styles itself with <style> elements and searches in a blob: worker; scripts stay 'self' only.
            return HTMLResponse(_docs_page("redoc.html"), headers={"Content-Security-Policy": REDOC_CSP})

    app.add_middleware(AccessMiddleware, allowed_hosts=access.config.allowed_hosts, audit=access.audit)
    check_every_route_guarded(app)


REDOC_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "font-src 'self' data:; worker-src blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
             "frame-ancestors 'none'")


def _docs_page(name: str) -> str:
    from api.routes.web import WEB_DIR

    return (WEB_DIR / name).read_text(encoding="utf-8")


def wants_html(request: Request) -> bool:
    """A browser navigating to a page (not a script calling the API): send it to the login page instead of a 401."""
    return request.method == "GET" and "text/html" in request.headers.get("accept", "") \
        and not request.url.path.startswith("/api/")


DEMO_ADMIN = "admin"


def ensure_demo_admin(access: AccessService) -> str | None:
    """In demo mode, the first start creates an admin with a generated password and returns it (to print once);
    None when accounts exist already."""
    import secrets

    if access.has_users():
        return None
    password = secrets.token_urlsafe(12)
    access.create_user(DEMO_ADMIN, ["admin"], password, by="demo")
    return password
