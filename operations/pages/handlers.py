"""The pages' handlers: gather one `Picture`, apply the operator API's views to it, render.

Every page answers 401 with the sign-in form when the request carries no accepted credentials,
and 503 with a short page when the state store is away, like the API.
"""

import base64
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from operations import checklist, views
from operations.config import PagesConfig
from operations.handlers import status_answer
from operations.pages.assets import Assets
from operations.pages.present import money, short_money
from operations.pages.session import COOKIE, Gate, Scope
from operations.pages.trend import Chart, chart
from operations.picture import Picture
from operations.service import Operations
from operations.store import DayRow
from tensafe_ops import __version__
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.operations.pages")
TEMPLATES_KEY = web.AppKey("pages_templates", jinja2.Environment)
NAV = (("status", "Status"), ("customers", "Customers"), ("checklist", "Checklist"))
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
CHALLENGE = 'Bearer realm="tensafe-ops"'
"""A 401's challenge: not Basic, which would put a browser's own dialog before the sign-in
form (the form takes a user name and password too)."""
AT_RISK_ROWS = 200
_STORE_ERRORS = (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError)


@dataclass(frozen=True)
class Pages:
    cfg: PagesConfig
    ops: Operations
    gate: Gate
    demo: bool
    assets: Assets


PAGES_KEY = web.AppKey("status_pages", Pages)
PageHandler = Callable[[web.Request, Pages], Awaitable[tuple[str, dict[str, Any]]]]


R = TypeVar("R", bound=web.StreamResponse)


def secure_headers(response: R) -> R:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    pages = request.app[PAGES_KEY]
    base = {
        "demo": pages.demo,
        "nav": NAV,
        "version": __version__,
        "refresh": round(pages.cfg.refresh_seconds) or None,
        "scope": None,
        "signed_in_with_cookie": False,
        "api_path": "/api/v1/openapi.json",
        "heading": None,
    }
    response = aiohttp_jinja2.render_template(
        template, request, {**base, **context}, status=status, app_key=TEMPLATES_KEY
    )
    secure_headers(response)
    return response


def redirect(target: str) -> web.Response:
    return secure_headers(web.Response(status=303, headers={"Location": target}))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/status"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/status"
    return target


def login_page(
    request: web.Request, *, status: int, error: str | None = None, target: str | None = None
) -> web.Response:
    pages = request.app[PAGES_KEY]
    response = render(
        request,
        "login.html",
        {
            "title": "Sign in",
            "page": "login",
            "error": error,
            "next": safe_next(target),
            "basic": pages.gate.basic_configured,
            "refresh": None,
        },
        status=status,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def page(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        pages = request.app[PAGES_KEY]
        now = pages.ops.clock().timestamp()
        header_scope = pages.gate.scope_of_header(request.headers.get("Authorization"))
        scope: Scope | None = "api" if pages.gate.open else header_scope
        from_cookie = False
        if scope is None:
            scope = pages.gate.scope_of_cookie(request.cookies.get(COOKIE), now)
            from_cookie = scope is not None
        if scope is None:
            return login_page(request, status=401, target=request.path_qs)
        try:
            template, context = await handler(request, pages)
        except _STORE_ERRORS as exc:
            log.error("operator_store_unavailable", error=type(exc).__name__, page=request.path)
            response = web.Response(
                text="The state store is unavailable; this page will work again when it is back.",
                status=503,
            )
            return secure_headers(response)
        return render(
            request,
            template,
            {**context, "scope": scope, "signed_in_with_cookie": from_cookie},
        )

    return guarded


async def _picture(pages: Pages) -> Picture:
    ops = pages.ops
    return await ops.picture(ops.clock(), ops.prometheus())


@page
async def status_page(_request: web.Request, pages: Pages) -> tuple[str, dict[str, Any]]:
    p = await _picture(pages)
    board = status_answer(p)
    return "status.html", {
        "title": f"Status: {board['light'].upper()}",
        "heading": "Status",
        "taken_at": board["taken_at"],
        "page": "status",
        "board": board,
        "zendesk_known": p.has("zendesk"),
        "tickets_total": p.overview("zendesk").get("open_urgent_total"),
        "api_path": "/api/v1/status",
    }


def trend_rows(
    stored: list[DayRow], today: date, days: int, live: Mapping[str, Any] | None
) -> list[tuple[date, Mapping[str, Any] | None]]:
    """One entry per day, oldest first: each stored record's customer totals, today's live."""
    by_day = {row.day: (row.record or {}).get("customers") for row in stored}
    first = today - timedelta(days=days - 1)
    rows: list[tuple[date, Mapping[str, Any] | None]] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        rows.append((day, live if day == today else by_day.get(day.isoformat())))
    return rows


def trend_charts(
    rows: list[tuple[date, Mapping[str, Any] | None]], currency: str | None
) -> list[tuple[str, str, Chart]]:
    def band(totals: Mapping[str, Any] | None, key: str) -> float | None:
        if totals is None:
            return None
        value = ((totals.get("bands") or {}).get("at_risk") or {}).get(key)
        return None if value is None else float(value)

    def total(totals: Mapping[str, Any] | None) -> float | None:
        value = None if totals is None else totals.get("mrr")
        return None if value is None else float(value)

    def whole(value: float) -> str:
        return f"{value:,.0f}"

    def cash(value: float) -> str:
        return money(value, currency)

    def axis_cash(value: float) -> str:
        return short_money(value, currency)

    at_risk = [(day, band(t, "customers")) for day, t in rows]
    at_risk_mrr = [(day, band(t, "mrr")) for day, t in rows]
    mrr = [(day, total(t)) for day, t in rows]
    return [
        (
            "At-risk customers",
            "trend-at-risk",
            chart(at_risk, whole, what="At-risk customers", integers=True),
        ),
        (
            "MRR at risk",
            "trend-at-risk-mrr",
            chart(at_risk_mrr, cash, what="MRR at risk", tick_format=axis_cash),
        ),
        ("Total MRR", "trend-mrr", chart(mrr, cash, what="Total MRR", tick_format=axis_cash)),
    ]


@page
async def customers_page(_request: web.Request, pages: Pages) -> tuple[str, dict[str, Any]]:
    p = await _picture(pages)
    people = views.customers(p, None, 0, 0)
    days = pages.cfg.trend_days
    stored = await pages.ops.store.days(p.day - timedelta(days=days - 1), p.day)
    rows = trend_rows(stored, p.day, days, views.customer_totals(p))
    return "customers.html", {
        "title": "Customers",
        "heading": "Customers",
        "taken_at": people["taken_at"],
        "page": "customers",
        "people": people,
        "at_risk": views.customers(p, "at_risk", AT_RISK_ROWS, 0),
        "enterprise": views.enterprise(p),
        "charts": trend_charts(rows, people["currency"]),
        "trend_days": days,
        "api_path": "/api/v1/customers?band=at_risk",
    }


@page
async def checklist_page(_request: web.Request, pages: Pages) -> tuple[str, dict[str, Any]]:
    p = await _picture(pages)
    result = checklist.checklist(p)
    return "checklist.html", {
        "title": f"Checklist {p.day.isoformat()}",
        "heading": f"Checklist {p.day.isoformat()}",
        "taken_at": result["taken_at"],
        "page": "checklist",
        "result": result,
        "api_path": "/api/v1/checklist/today",
    }


# -- signing in ------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.StreamResponse:
    pages = request.app[PAGES_KEY]
    if pages.gate.open:
        return redirect(safe_next(request.query.get("next")))
    return login_page(request, status=200, target=request.query.get("next"))


def _authorization(form: Mapping[str, Any]) -> str | None:
    token = str(form.get("token") or "").strip()
    if token:
        return f"Bearer {token}"
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    if username or password:
        pair = f"{username}:{password}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


async def login_submit(request: web.Request) -> web.StreamResponse:
    pages = request.app[PAGES_KEY]
    form = await request.post()
    target = safe_next(str(form.get("next") or ""))
    if pages.gate.open:
        return redirect(target)
    scope = pages.gate.scope_of_header(_authorization(form))
    if scope is None:
        log.info("pages_sign_in_refused", remote=request.remote)
        return login_page(
            request, status=401, error="Those credentials were not accepted.", target=target
        )
    lifetime = pages.cfg.session_hours * 3600
    cookie = pages.gate.issue(scope, pages.ops.clock().timestamp(), lifetime)
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(lifetime),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )
    log.info("pages_signed_in", scope=scope, remote=request.remote)
    return response


async def logout(_request: web.Request) -> web.StreamResponse:
    response = redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response


async def static_file(request: web.Request) -> web.StreamResponse:
    assets = request.app[PAGES_KEY].assets
    asset = assets.files.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    response = web.Response(body=asset.body, content_type=asset.content_type)
    versioned = request.query.get("v") == asset.digest
    response.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if versioned else "no-cache"
    )
    response.headers["ETag"] = f'"{asset.digest}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
