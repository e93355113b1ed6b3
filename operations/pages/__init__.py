"""The status pages: `/status` (Part 1's board), `/customers` (Steps 5 and 6 with a trend) and
`/checklist` (Part 7), server-rendered from the operator API's own views, so a page and its JSON
(`/api/v1/status`, `/api/v1/customers`, `/api/v1/checklist/today`) always say the same thing.

Jinja2 templates with autoescaping, one stylesheet and one small script served from here
(nothing from another origin, a Content-Security-Policy that says so), readable without the
script. Behind the API's credentials: see `operations.pages.session`.
"""

import aiohttp_jinja2
import jinja2
from aiohttp import web

from operations.config import PagesConfig
from operations.handlers import OPERATIONS_KEY
from operations.pages import present
from operations.pages.assets import Assets
from operations.pages.handlers import (
    PAGES_KEY,
    TEMPLATES_KEY,
    Pages,
    checklist_page,
    customers_page,
    login_form,
    login_submit,
    logout,
    static_file,
    status_page,
)
from operations.pages.session import Gate
from tensafe_ops.keys import DEMO_KEY

__all__ = ["PAGES_KEY", "setup"]


def setup(app: web.Application, cfg: PagesConfig) -> None:
    """Call after the operator API's setup (the pages read its `Operations`)."""
    if not cfg.enabled:
        return
    ops = app[OPERATIONS_KEY]
    assets = Assets.load()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("operations.pages", "templates"),
        app_key=TEMPLATES_KEY,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(present.FILTERS)
    env.globals["static_url"] = assets.url
    app[PAGES_KEY] = Pages(
        cfg=cfg,
        ops=ops,
        gate=Gate(ops.api_auth, ops.cfg.read_auth),
        demo=app.get(DEMO_KEY, False),
        assets=assets,
    )
    routes = app.router
    routes.add_get("/status", status_page)
    routes.add_get("/customers", customers_page)
    routes.add_get("/checklist", checklist_page)
    routes.add_get("/login", login_form)
    routes.add_post("/login", login_submit)
    routes.add_post("/logout", logout)
    routes.add_get("/pages/static/{name}", static_file)
