"""The layers as the imports draw them: `python -m marketplace.app.layers` (or `make layers`).

Prints each layer of the import contract in pyproject.toml (`[tool.importlinter]`, checked by
`lint-imports` in `make lint`) from the composition root down to the pure core, the modules in
it, and how many imports it makes into each layer below; an import into a layer above is printed
as a break (the contract forbids it, so `make lint` would fail too). Needs the dev tools that
`make setup` installs (grimp comes with import-linter)."""

from __future__ import annotations

import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def contract_layers() -> tuple[list[str], list[list[str]]]:
    """(root packages, the layers top to bottom, each a list of module names)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["id"] == "layers"]
    split = [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in layers]
    return list(config["root_packages"]), split


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The index of the layer holding `module`: the longest contract name it falls under."""
    best: tuple[int, int] | None = None
    for i, names in enumerate(layers):
        for name in names:
            under = module == name or module.startswith(name + ".")
            if under and (best is None or len(name) > best[1]):
                best = (i, len(name))
    return None if best is None else best[0]


def main() -> int:
    import grimp

    roots, layers = contract_layers()
    graph = grimp.build_graph(*roots)
    edges: Counter[tuple[int, int]] = Counter()
    breaks: list[str] = []
    sizes: Counter[int] = Counter()
    for module in sorted(graph.modules):
        src = layer_of(module, layers)
        if src is None:
            continue
        sizes[src] += 1
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            dst = layer_of(imported, layers)
            if dst is None or dst == src:
                continue
            edges[(src, dst)] += 1
            if dst < src:
                breaks.append(f"  BREAK {module} -> {imported} (runs up)")
    for i, names in enumerate(layers):
        if len(names) < 4:
            print(f"[{i}] {' | '.join(names)}  -  {sizes[i]} modules")
        else:  # the shared shell: many siblings of one package
            package = names[0].rsplit(".", 1)[0]
            print(f"[{i}] {package}: the shared shell  -  {sizes[i]} modules")
            print("     " + ", ".join(n.rsplit(".", 1)[-1] for n in names))
        below = [f"[{d}] {edges[(i, d)]}" for d in range(i + 1, len(layers)) if edges[(i, d)]]
        print("     imports down into: " + (", ".join(below) if below else "nothing"))
    print("\n".join(breaks) if breaks else "no import runs up")
    return 1 if breaks else 0


if __name__ == "__main__":
    sys.exit(main())
