"""The FastAPI application, built from an explicit Service so tests can build as many as they like."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from access.app import install_access, open_access
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.routes import health, ingest, items, live, metrics, quarantine, review, web
from yuqing.host import Service


def create_app(service: Service, *, start_workers: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            service.start()
        try:
            yield
        finally:
            service.stop()

    # /docs, /redoc and /openapi.json are served by access.app behind login (or not at all), never open.
    app = FastAPI(title="yuqing 舆情", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Risk feed, search, events, alerts and response plans for government public-opinion work. "
                              "Every route but /health and /login needs a session (POST /api/auth/login) or "
                              "`Authorization: Bearer <token>` (`yuqing token create`).")
    app.state.service = service
    app.state.item_signal = live.ItemSignal()
    service.ingestor.listeners.append(app.state.item_signal)
    install_error_handlers(app)
    for module in (health, items, live, review, quarantine, ingest, metrics, web):
        app.include_router(module.router)
    app.include_router(review.board)
    for router in service.routers:
        app.include_router(router)
    web.install_docs(app)  # before /static: the docs' assets are a mount of their own under it
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    install_access(app, open_access(service.store, service.config))
    # Outermost, so an oversized push is refused while it streams in, before the access layer or JSON parsing.
    app.add_middleware(BodySizeLimit, limits={ingest.router.prefix: ingest.MAX_BODY_BYTES})
    return app
