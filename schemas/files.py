"""Where the generated contract documents live (written by `python -m marketplace.app.generate`)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
JSON_DIR = HERE / "json"
ASYNCAPI = HERE / "asyncapi.json"
OPENAPI = HERE / "openapi.json"
