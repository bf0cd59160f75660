"""The import contracts (pyproject.toml, checked by `lint-imports` in `make lint`) must name every
module of the shared shell: a module missing from the layers would be checked by nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    layers: list[str] = contract["layers"]
    return layers


def test_every_module_of_marketplace_is_in_a_layer() -> None:
    named = {name.strip() for layer in _layers() for name in layer.replace("|", ":").split(":")}
    package = ROOT / "marketplace"
    present = {
        f"marketplace.{p.stem if p.is_file() else p.name}"
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert present - named == set(), "add these to the layers contract in pyproject.toml"
    assert {n for n in named if n.startswith("marketplace.")} - present == set()


def test_the_layers_run_from_the_composition_root_down_to_the_core() -> None:
    layers = _layers()
    assert layers[1] == "marketplace.app"
    assert layers[-2:] == ["schemas", "marketplace.core"]
    assert "producers | consumers" in layers


def test_the_layer_drawing_places_modules_by_the_longest_contract_name() -> None:
    from marketplace.app.layers import contract_layers, layer_of

    _, layers = contract_layers()
    assert layer_of("marketplace.app.cli", layers) == 1
    assert layer_of("marketplace.core.book", layers) == len(layers) - 1
    assert layer_of("marketplace.translate.matching", layers) == len(layers) - 3
    assert layer_of("consumers.matcher", layers) == 2
    assert layer_of("tests.unit", layers) is None
