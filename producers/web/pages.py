"""The pages for people (#19), server-rendered with Jinja2 templates (aiohttp-jinja2); htmx swaps
fragments where it helps and every page also works without JavaScript. Each group of pages is a
module with its own routes: people.py (accounts), sme.py (an SME's listings and proposals)."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from producers.api.context import SETTINGS
from producers.web import people, sme
from producers.web.common import HERE
from producers.web.session import PREFIX

# Browser libraries as npm ships them (infra/web.sh installs them from the lock).
ASSETS = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "sse.js": "htmx-ext-sse/sse.js",
}


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "site.css":
        return web.FileResponse(HERE / "static" / "site.css")
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(request.app[SETTINGS].web_assets_dir / ASSETS[name])


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    people.add_routes(app)
    sme.add_routes(app)
    app.router.add_get(PREFIX + "/static/{name}", asset)
