"""The web workspace: server-rendered page shells (navigation and actions cut to the caller's roles) whose small
scripts read the same JSON API as any client. Crawled text never reaches these templates: the scripts put it into
the page as text nodes, and the CSP (access/guard.py) forbids inline script and style."""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from access.guard import PrincipalDep, require
from access.roles import ADMINS, FEED, READERS, RESPONDERS, REVIEWERS, Principal, Role
from api.deps import StoreDep
from core.errors import NotFound

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
ECHARTS = WEB_DIR / "vendor" / "echarts.min.js"  # fetched from the npm registry by `make` (Makefile: echarts)
REVIEWS = REVIEWERS | {Role.press_office}  # the outcome-review API admits the press office too (playbooks/api.py)

# What the page may offer: a body class `cap-NAME` per capability shows the elements marked data-cap="NAME".
CAPABILITIES: dict[str, frozenset[Role]] = {"feed": FEED, "respond": RESPONDERS, "admin": ADMINS, "review": REVIEWS,
                                             "plan": RESPONDERS}


@dataclass(frozen=True)
class Page:
    key: str
    path: str
    title: str
    roles: frozenset[Role]
    charts: bool = False
    in_nav: bool = True


PAGES = [
    Page("feed", "/", "风险动态", FEED),
    Page("hot", "/hot", "热点", FEED, charts=True),
    Page("trends", "/trends", "趋势", FEED, charts=True),
    Page("sources", "/sources", "信息源", FEED),
    Page("alerts", "/alerts", "预警", READERS),
    Page("plans", "/plans", "处置", READERS),
    Page("review", "/review", "复盘", REVIEWS, charts=True),
    Page("settings", "/settings", "设置", FEED),
    Page("item", "/items/{item_id}", "信息详情", READERS, in_nav=False),
    Page("event", "/events/{event_id}", "事件详情", FEED, charts=True, in_nav=False),
]
ROLE_ZH = {"press_office": "新闻办", "staff": "工作人员", "manager": "管理者", "admin": "管理员", "ingest": "接入"}

router = APIRouter(include_in_schema=False)


@cache
def _read(name: str) -> str:
    return (WEB_DIR / name).read_text(encoding="utf-8")


def capabilities(principal: Principal) -> list[str]:
    return [name for name, roles in CAPABILITIES.items() if principal.has_any(roles)]


def render(page: Page, principal: Principal) -> str:
    """The page's shell for this caller: only the links and actions its roles may use."""
    nav = "".join(
        f'<a href="{p.path}"{" aria-current=page" if p.key == page.key else ""}>{html.escape(p.title)}</a>'
        for p in PAGES if p.in_nav and principal.has_any(p.roles))
    scripts = ['<script src="/static/common.js"></script>']
    if page.charts and ECHARTS.exists():
        scripts.insert(0, '<script src="/static/vendor/echarts.min.js"></script>')
    scripts.append(f'<script src="/static/pages/{page.key}.js"></script>')
    roles = "、".join(ROLE_ZH.get(r.value, r.value) for r in sorted(principal.roles))
    classes = " ".join(f"cap-{c}" for c in capabilities(principal))
    # The user's name, the one value not written here, goes in last: no later replacement can see into it.
    return (_read("shell.html")
            .replace("{{body}}", _read(f"pages/{page.key}.html"))
            .replace("{{scripts}}", "\n".join(scripts))
            .replace("{{nav}}", nav)
            .replace("{{title}}", html.escape(page.title))
            .replace("{{page}}", page.key)
            .replace("{{classes}}", classes)
            .replace("{{user}}", html.escape(f"{principal.name}（{roles}）")))


def _respond(page: Page, principal: Principal) -> Response:
    return HTMLResponse(render(page, principal), headers={"Cache-Control": "no-store"})


def _page(key: str) -> Page:
    return next(p for p in PAGES if p.key == key)


@router.get("/", dependencies=[require(READERS)])
def index(principal: PrincipalDep) -> Response:
    if not principal.has_any(FEED):  # staff start at their inbox
        return RedirectResponse("/alerts", status_code=303)
    return _respond(_page("feed"), principal)


@router.get("/items/{item_id}", dependencies=[require(_page("item").roles)])
def item_page(item_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)], principal: PrincipalDep, store: StoreDep) -> Response:
    """Links in alert messages and reports point here: an item that does not exist, or lies outside the caller's
    regions, is a 404 (a Chinese page for a browser), not an empty page."""
    if not principal.sees_region(store.get(item_id).region):
        raise NotFound(f"no item {item_id}")
    return _respond(_page("item"), principal)


@router.get("/events/{event_id}", dependencies=[require(_page("event").roles)])
def event_page(event_id: Annotated[str, PathParam(max_length=200)], principal: PrincipalDep, store: StoreDep) -> Response:
    from analysis.event_store import get_event

    get_event(store, event_id)  # NotFound → 404
    return _respond(_page("event"), principal)


def _simple(page: Page) -> None:
    def show(principal: PrincipalDep) -> Response:
        return _respond(page, principal)

    router.add_api_route(page.path, show, methods=["GET"], dependencies=[require(page.roles)], name=f"page_{page.key}")


for _each in PAGES:
    if "{" not in _each.path and _each.key != "feed":
        _simple(_each)


def install_docs(app: FastAPI) -> None:
    """/docs and /redoc from assets shipped in the fastapi-offline wheel (no CDN), started by a script file so the
    strict CSP holds; only ReDoc needs inline styles (styled-components) and a blob worker (its search)."""
    from fastapi.staticfiles import StaticFiles

    try:
        import fastapi_offline
    except ImportError:  # the docs then say so instead of loading nothing
        return
    app.mount("/static/docs", StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs")
