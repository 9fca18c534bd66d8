"""One JSON error shape everywhere (after Datasette): {"ok": false, "status", "error", "errors"}."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from access.app import wants_html
from core.errors import NotAuthenticated, NotFound, PermissionDenied, YuqingError

logger = logging.getLogger(__name__)


_PAGE_TEXT = {403: "您的角色无权查看此页面。", 404: "页面或内容不存在。"}
_PAGE_ERROR = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" '
               'content="width=device-width, initial-scale=1"><title>{status} · yuqing 舆情</title>'
               '<link rel="stylesheet" href="/static/app.css"></head><body class="login"><main class="login-box">'
               '<h1>{text}</h1><p><a href="/">返回首页</a> · <a href="/login">换个账号登录</a></p></main></body></html>')


def error_body(status: int, message: str, errors: list | None = None) -> dict:
    return {"ok": False, "status": status, "error": message, "errors": errors or []}


def error_response(status: int, message: str, errors: list | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, errors), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(YuqingError)
    async def _yuqing(request: Request, exc: YuqingError) -> Response:
        if isinstance(exc, NotAuthenticated) and wants_html(request):  # a person opening a page: the login form
            return RedirectResponse(f"/login?next={quote(request.url.path, safe='/')}", status_code=303)
        if isinstance(exc, PermissionDenied | NotFound) and wants_html(request):  # a page this person may not open
            return HTMLResponse(_PAGE_ERROR.format(status=exc.status, text=_PAGE_TEXT[exc.status]), status_code=exc.status)
        response = error_response(exc.status, exc.message, exc.errors)
        if exc.status == 503:  # a database away (StorageUnavailable): the client retries what it sent
            response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return error_response(422, f"invalid request: {summary}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, _exc: OverflowError) -> JSONResponse:
        # A number a client sent that no SQL integer holds (an id of 30 digits): it names nothing, a client error.
        logger.info("number out of range path=%s", request.url.path)
        return error_response(400, "a number in the request is out of range (at most 2**63 - 1)")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error path=%s", request.url.path)
        return error_response(500, f"internal error: {exc.__class__.__name__}")
