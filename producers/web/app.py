"""The exchange's HTTP service: the API (producers/api) with the pages for people mounted beside
it under /app, sharing its pool, producer, settings and commands."""

from __future__ import annotations

from aiohttp import web

from marketplace.settings import Settings
from producers.api.app import create_app
from producers.web import (
    agreements,
    deals,
    documents,
    facilitation,
    invoices,
    legal,
    logistics,
    pages,
    periods,
    preferences,
    searches,
    staff,
    staff_admins,
)
from producers.web.session import pages_middleware


def create_service(settings: Settings) -> web.Application:
    app = create_app(settings)
    # Innermost: the API's auth middleware lets /app through to the session check here.
    app.middlewares.append(pages_middleware)
    pages.setup(app)
    staff.add_routes(app)
    facilitation.add_routes(app)
    staff_admins.add_routes(app)
    logistics.add_routes(app)
    preferences.add_routes(app)
    deals.add_routes(app)
    legal.add_routes(app)
    documents.add_routes(app)
    invoices.add_routes(app)
    agreements.add_routes(app)
    periods.add_routes(app)
    searches.add_routes(app)
    return app
