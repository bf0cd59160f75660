"""Sphinx configuration of the exchange's documentation (`make docs`).

Pages are MyST Markdown; the reference tables (services, commands, settings, topics, events, HTTP)
are written from the code at build time by the local extension in `_ext/`. Nothing is fetched:
no intersphinx, no remote images, no third-party Sphinx extension beyond MyST and the theme.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(DOCS / "_ext"), str(ROOT)]

project = "Circular materials exchange"
author = "the exchange's contributors"
copyright = "the exchange's contributors, Apache-2.0"
language = "en"

extensions = ["myst_parser", "marketplace_docs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Slugs for "[text](page.md#heading)" links; labels "(name)=" for the rest.
myst_heading_anchors = 3

html_theme = "furo"
html_title = "Circular materials exchange"
html_static_path: list[str] = []
html_show_sourcelink = False
html_last_updated_fmt = None

# Off the network: nothing is looked up elsewhere.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
linkcheck_ignore = [r".*"]
