"""The README stays a short, true front door, and the documentation's generated tables cover the
code they are written from."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXTENSION = ROOT / "docs" / "_ext" / "marketplace_docs.py"


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    rest = text[start + len(title) + 4 :]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[:end]


def _layout_folders() -> list[str]:
    rows = [
        line
        for line in _section(README.read_text(), "Layout").splitlines()
        if line.startswith("| `")
    ]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


def _tracked_top_level_folders() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}


def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("marketplace_docs", EXTENSION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) < 220


def test_every_folder_in_the_layout_table_exists() -> None:
    folders = _layout_folders()
    assert folders, "the README has no layout table"
    for folder in folders:
        assert folder.endswith("/"), folder
        assert (ROOT / folder).is_dir(), f"README names {folder}, which does not exist"


def test_every_top_level_folder_is_in_the_layout_table() -> None:
    named = {f.split("/")[0] for f in _layout_folders()}
    missing = _tracked_top_level_folders() - named
    assert not missing, f"top-level folders missing from the README's layout table: {missing}"


def test_readme_commands_exist() -> None:
    from marketplace.app.cli import build_parser

    parser = build_parser()
    commands = re.findall(r"\.venv/bin/marketplace ([a-z -]+?)(?: --|\n|$)", README.read_text())
    assert commands
    for command in commands:
        words = command.split()
        # parse_known_args fails (SystemExit) on an unknown command or subcommand.
        parser.parse_known_args([*words, "--name", "x", "--role", "sme", "--country", "SE"])


def test_readme_routes_exist() -> None:
    import json

    from aiohttp import web

    from producers.web import pages

    paths = json.loads((ROOT / "schemas" / "openapi.json").read_text())["paths"]
    # The pages for people are no part of the API's document: their routes come from the app.
    app = web.Application()
    pages.setup(app)
    paths = [*paths, *(r.canonical for r in app.router.resources())]
    routes = {re.sub(r"\{[^}]+\}", "{}", p) for p in paths}
    used = re.findall(r"http://127\.0\.0\.1:8080(/[A-Za-z0-9/_<>{}-]*)", README.read_text())
    assert used
    for path in used:
        shape = re.sub(r"<[^>]+>", "{}", path)
        assert shape in routes, f"README uses {path}, which the API does not serve"


def test_the_settings_tables_name_every_setting() -> None:
    from marketplace.settings import PREFIX, Settings

    text = _extension().settings_markdown()
    for field in dataclasses.fields(Settings):
        assert f"`{PREFIX}{field.name.upper()}`" in text


def test_the_services_table_names_every_service() -> None:
    from marketplace.app.services import SERVICES

    text = _extension().services_markdown()
    for name in SERVICES:
        assert f"`marketplace run {name}`" in text


def test_the_cli_reference_names_every_command() -> None:
    from marketplace.app.cli import COMMANDS

    text = _extension().cli_markdown()
    for name in COMMANDS:
        assert f"`marketplace {name}`" in text
