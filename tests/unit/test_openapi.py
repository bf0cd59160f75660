from __future__ import annotations

import orjson

from marketplace.settings import Settings
from producers.web.app import create_service
from schemas.files import OPENAPI


def test_openapi_documents_exactly_the_routes_the_app_serves() -> None:
    # The service `marketplace run api` serves: the API, the deal rooms' API routes and the
    # pages for people (under /app, not part of the partner API).
    app = create_service(Settings.from_env({}))
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not route.resource.canonical.startswith("/app")
    }
    doc = orjson.loads(OPENAPI.read_bytes())
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented | {("get", "/openapi.json")} == served
    assert doc["openapi"] == "3.1.0"


def test_every_write_documents_idempotency_and_problems() -> None:
    doc = orjson.loads(OPENAPI.read_bytes())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "202" in op["responses"]:
                names = [p["name"] for p in op["parameters"]]
                assert "Idempotency-Key" in names, (method, path)
                assert {"400", "401", "403", "429"} <= set(op["responses"])
                # A key that is still being answered: wherever the write reserves keys.
                if "idempotency-key-in-progress" in str(op["responses"]):
                    assert "409" in op["responses"], (method, path)
                if "requestBody" in op:
                    assert {"413", "422"} <= set(op["responses"]), (method, path)
