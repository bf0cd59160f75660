"""Sphinx directives that write the documentation's reference tables from the code itself.

Each directive renders Markdown (MyST) text from one source of truth and parses it in place, so a
table can never drift from what it describes:

``{services-table}``
    ``marketplace.app.services.SERVICES``: each service's module (read from the imports of its
    ``run_*`` function), its consumer group and input topics, and its module docstring.
``{cli-reference}``
    the argparse parser ``marketplace.app.cli.build_parser()``: every command, its arguments,
    defaults and help texts.
``{settings-table}``
    the ``Settings`` dataclass of ``marketplace.settings``: the environment variable
    (``MARKETPLACE_`` + the field name in upper case, as ``Settings.from_env`` reads it), the
    type, the default, and the help text, which lives in the comments above each group of fields.
``{topics-table}``
    ``schemas.topics.TOPICS``: name, key, what the topic carries, retention.
``{event-catalogue}``
    the committed AsyncAPI document ``schemas/asyncapi.json``.
``{http-reference}``
    the committed OpenAPI document ``schemas/openapi.json``.

Nothing here touches the network. The ``*_markdown`` functions are plain functions of the code, so
a unit test can call them without Sphinx.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import re
import tokenize
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "schemas" / "asyncapi.json"
OPENAPI = ROOT / "schemas" / "openapi.json"

JSON = dict[str, Any]


# Markdown helpers ------------------------------------------------------------------------------


def cell(text: object) -> str:
    """One table cell: a single line, with pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: object) -> str:
    """An inline code span that survives any backticks in `text`."""
    value = str(text)
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def prose(text: object) -> str:
    """Text from the code or a JSON document as Markdown: its `code spans` kept, and anything
    outside them that Markdown would take for HTML or emphasis escaped."""
    parts = re.split(r"(`[^`]*`)", str(text))
    return "".join(
        part if part.startswith("`") else re.sub(r"([<>*\\[\]])", r"\\\1", part) for part in parts
    )


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def first_sentence(doc: str | None) -> str:
    para = first_paragraph(doc)
    match = re.match(r"(.+?\.)(\s|$)", para)
    return match.group(1) if match else para


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# Services --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServiceDoc:
    name: str
    module: str
    group: str | None
    topics: tuple[str, ...]
    summary: str


def _imports_of(func: Callable[..., Any]) -> list[ast.ImportFrom]:
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(func)))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module is not None
        and node.module.split(".")[0] in ("consumers", "producers")
    ]


def describe_service(name: str, func: Callable[..., Any]) -> ServiceDoc:
    """What `marketplace run <name>` starts, read from the imports inside its run function: the
    module it takes the service from, and the group and topic constants it names (or the
    module's own GROUP and TOPICS/TOPIC when it imports a ready-made runner)."""
    import importlib

    found = _imports_of(func)
    if not found:
        raise ValueError(f"service {name!r}: its run function imports no producer or consumer")
    module_name = str(found[0].module)
    module = importlib.import_module(module_name)
    imported = {alias.name for node in found for alias in node.names}
    group_names = sorted(n for n in imported if n.endswith("GROUP")) or ["GROUP"]
    topic_names = sorted(n for n in imported if n.endswith(("TOPIC", "TOPICS"))) or [
        "TOPICS",
        "TOPIC",
    ]
    group = next((getattr(module, n) for n in group_names if hasattr(module, n)), None)
    topics: tuple[str, ...] = ()
    for n in topic_names:
        value = getattr(module, n, None)
        if isinstance(value, str):
            topics = (value,)
            break
        if isinstance(value, list | tuple):
            topics = tuple(str(v) for v in value)
            break
    # An application factory's module says less than its package (producers.api.app).
    doc_module = module
    if module_name.endswith(".app") and module.__package__:
        doc_module = importlib.import_module(module.__package__)
    summary = prose(first_sentence(doc_module.__doc__) or first_sentence(module.__doc__))
    return ServiceDoc(name, module_name, group, topics, summary)


def services_markdown() -> str:
    from marketplace.app.services import SERVICES

    rows = []
    for name, func in SERVICES.items():
        svc = describe_service(name, func)
        rows.append(
            (
                code(f"marketplace run {svc.name}"),
                code(svc.module),
                code(svc.group) if svc.group else "(not a consumer)",
                ", ".join(code(t) for t in svc.topics) or "",
                svc.summary,
            )
        )
    lines = table(["command", "module", "consumer group", "reads", "what it is"], rows)
    lines.append(
        f"`marketplace run all` runs these {len(SERVICES)} services in one process "
        "(with `--simulate RATE`, the market simulator beside them); every process also serves "
        "`/metrics`, `/healthz` and `/readyz`."
    )
    return "\n".join(lines)


# The CLI ---------------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def _argument(action: argparse.Action) -> str:
    if action.option_strings:
        text = max(action.option_strings, key=len)
        if action.nargs != 0:
            if action.choices:
                text += " {" + ",".join(str(c) for c in action.choices) + "}"
            else:
                text += " " + str(action.metavar or action.dest.upper())
        return text if action.required else f"[{text}]"
    if action.choices:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return str(action.metavar or action.dest.upper())


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def _leaves(
    prefix: str, parser: argparse.ArgumentParser, text: str
) -> list[tuple[str, str, argparse.ArgumentParser]]:
    subs = _subcommands(parser)
    if not subs:
        return [(prefix, text, parser)]
    out: list[tuple[str, str, argparse.ArgumentParser]] = []
    for name, help_text, sub in subs:
        out += _leaves(f"{prefix} {name}", sub, help_text)
    return out


def _default(action: argparse.Action) -> str:
    if action.required or action.default in (None, False, argparse.SUPPRESS):
        return ""
    return code(action.default)


def cli_markdown(heading_level: int = 2) -> str:
    from marketplace.app.cli import build_parser

    parser = build_parser()
    hashes = "#" * heading_level
    lines = [
        "| command | does |",
        "| --- | --- |",
    ]
    top = _subcommands(parser)
    lines += [f"| [`marketplace {n}`](#cli-{slug(n)}) | {cell(prose(h))} |" for n, h, _ in top]
    lines.append("")
    for name, help_text, sub in top:
        lines += [f"({'cli-' + slug(name)})=", f"{hashes} `marketplace {name}`", ""]
        lines += [cell(prose(help_text[:1].upper() + help_text[1:])) + ".", ""]
        rows = []
        for command, text, leaf in _leaves(f"marketplace {name}", sub, help_text):
            usage = " ".join([command, *(_argument(a) for a in _arguments(leaf))])
            rows.append((usage, text))
        if len(rows) == 1 and not _subcommands(sub):
            lines += ["```text", rows[0][0], "```", ""]
        else:
            lines += table(["usage", "does"], [(code(u), prose(t)) for u, t in rows])
        args = list(
            dict.fromkeys(
                (code(_argument(a).strip("[]")), _default(a), prose(a.help or ""))
                for _, _, leaf in _leaves(name, sub, help_text)
                for a in _arguments(leaf)
                if a.help or _default(a)
            )
        )
        if args:
            lines += table(["argument", "default", "meaning"], args)
    return "\n".join(lines)


# Settings --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SettingsGroup:
    help: str
    fields: list[tuple[str, str, str, str]]  # variable, type, default, note


def _comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """The comment lines of `source` (line number -> text), and the comments that end a line of
    code (line number -> text)."""
    whole: dict[int, str] = {}
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            (trailing if tok.line[: tok.start[1]].strip() else whole)[tok.start[0]] = text
    return whole, trailing


def _note(comment: str) -> str:
    # "noqa: S105 - loopback-only dev server" -> "loopback-only dev server"
    return re.sub(r"^(noqa|type:\s*ignore)(\[[^\]]*\])?(:\s*[A-Z0-9, ]+)?\s*-?\s*", "", comment)


def _type_name(hint: object) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(hint))
    if hint is float:
        return "number"
    if hint is int:
        return "integer"
    if hint is Path:
        return "path"
    if hint is str:
        return "text"
    return getattr(hint, "__name__", str(hint))


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f" ({int(seconds // size)} {unit})"
    return ""


def _setting_default(name: str, value: object, root: Path) -> str:
    if isinstance(value, Path):
        try:
            return code(value.relative_to(root))
        except ValueError:
            return code(value)
    if value == "":
        return "*(empty)*"
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = code(int(value)) if float(value).is_integer() else code(value)
        return shown + (_duration(value) if name.endswith("_s") else "")
    return code(value)


def settings_groups() -> list[SettingsGroup]:
    """The Settings fields in their source order, grouped under the comment block above them
    (a field's own help, or its group's), with the defaults as the dataclass holds them."""
    import marketplace.settings as mod

    cls = mod.Settings
    source = inspect.getsource(mod)
    comments, trailing = _comments(source)
    class_node = next(
        n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == cls.__name__
    )
    lines_of = {
        n.target.id: n.lineno
        for n in class_node.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    hints = typing.get_type_hints(cls)
    groups: list[SettingsGroup] = []
    for f in dataclasses.fields(cls):
        line = lines_of[f.name]
        block: list[str] = []
        above = line - 1
        while above in comments:
            block.insert(0, comments[above])
            above -= 1
        help_text = str(f.metadata.get("help", "")) if f.metadata else ""
        if block or help_text or not groups:
            groups.append(SettingsGroup(help_text or " ".join(block), []))
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        groups[-1].fields.append(
            (
                code(mod.PREFIX + f.name.upper()),
                _type_name(hints[f.name]),
                _setting_default(f.name, default, mod.ROOT),
                prose(_note(trailing.get(line, ""))),
            )
        )
    return groups


def settings_markdown() -> str:
    lines: list[str] = []
    for group in settings_groups():
        if group.help:
            lines += [prose(group.help), ""]
        with_notes = any(note for *_, note in group.fields)
        header = ["variable", "type", "default"] + (["note"] if with_notes else [])
        rows = [row if with_notes else row[:3] for row in group.fields]
        lines += table(header, rows)
    return "\n".join(lines)


# Topics ----------------------------------------------------------------------------------------


def _retention(config: Mapping[str, str]) -> str:
    ms = config.get("retention.ms")
    if ms is None:
        return "broker default"
    if ms == "-1":
        return "kept for ever"
    days = int(ms) / 86_400_000
    return f"{days:g} days"


def topics_markdown() -> str:
    from schemas.topics import TOPICS

    rows = [(code(t.name), t.key, t.purpose, _retention(t.config)) for t in TOPICS]
    return "\n".join(table(["topic", "key", "carries", "retention"], rows))


# JSON Schema rendering (shared by the event catalogue and the HTTP reference) ------------------


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_type(schema: JSON, link: Callable[[str], str]) -> str:
    """A JSON Schema as a short phrase: `string`, `array of Money`, `one of a, b`..."""
    if "$ref" in schema:
        return link(_ref_name(schema["$ref"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [schema_type(s, link) for s in schema[key]]
            return " or ".join(dict.fromkeys(parts))
    if "const" in schema:
        return code(json.dumps(schema["const"]))
    if "enum" in schema:
        return "one of " + ", ".join(code(json.dumps(v)) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return "array of " + (schema_type(items, link) if isinstance(items, dict) else "any")
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map of string to " + schema_type(schema["additionalProperties"], link)
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return str(kind or "any")


_CONSTRAINTS = (
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches {}"),
)


def constraints(schema: JSON) -> str:
    parts: list[str] = []
    for alternative in [schema, *schema.get("anyOf", [])]:
        for key, text in _CONSTRAINTS:
            if key in alternative:
                value = alternative[key]
                parts.append(text.format(code(value) if key == "pattern" else value))
    if "default" in schema:
        parts.append("default " + code(json.dumps(schema["default"])))
    return "; ".join(parts)


def fields_table(schema: JSON, link: Callable[[str], str]) -> list[str]:
    props: dict[str, JSON] = schema.get("properties", {})
    if not props:
        return ["*(no fields)*", ""]
    required = set(schema.get("required", []))
    rows = [
        (
            code(name),
            schema_type(prop, link),
            "yes" if name in required else "",
            "; ".join(p for p in (prose(prop.get("description", "")), constraints(prop)) if p),
        )
        for name, prop in props.items()
    ]
    return table(["field", "type", "required", "notes"], rows)


def _schema_section(
    name: str, schema: JSON, label: str, link: Callable[[str], str], hashes: str
) -> list[str]:
    lines = [f"({label})=", f"{hashes} {name}", ""]
    if schema.get("description"):
        lines += [prose(schema["description"]), ""]
    if "properties" in schema or schema.get("type") == "object":
        lines += fields_table(schema, link)
    else:
        lines += [f"A value of type {schema_type(schema, link)}.", ""]
        if constraints(schema):
            lines += [constraints(schema).capitalize() + ".", ""]
    return lines


# The event catalogue ---------------------------------------------------------------------------


def event_catalogue_markdown(document: JSON | None = None) -> str:
    doc = document if document is not None else json.loads(ASYNCAPI.read_text())
    messages: dict[str, JSON] = doc["components"]["messages"]
    schemas: dict[str, JSON] = doc["components"]["schemas"]

    def link(name: str) -> str:
        if name in messages:
            return f"{{ref}}`{messages[name]['name']} <event-{slug(name)}>`"
        return f"{{ref}}`{name} <event-schema-{slug(name)}>`"

    lines = [prose(doc["info"].get("description", "")), ""]
    channels = sorted(doc["channels"].values(), key=lambda c: c["address"])
    lines += table(
        ["topic", "events"],
        [
            (
                f"[{code(c['address'])}](#topic-{slug(c['address'])})",
                ", ".join(link(_ref_name(m["$ref"])) for m in c["messages"].values()),
            )
            for c in channels
        ],
    )
    # An event is described under its home topic, the first in the document that carries it;
    # another topic that carries it too (market.cells) links to it there.
    home: dict[str, str] = {}
    for c in doc["channels"].values():
        for m in c["messages"].values():
            home.setdefault(_ref_name(m["$ref"]), c["address"])
    payloads: set[str] = set()
    for channel in channels:
        address = channel["address"]
        lines += [f"(topic-{slug(address)})=", f"## {code(address)}", ""]
        lines += [prose(channel.get("description", "")), ""]
        names = [_ref_name(ref["$ref"]) for ref in channel["messages"].values()]
        visiting = [n for n in names if home[n] != address]
        if visiting:
            lines += [
                f"Also carries, as on their own topics: {', '.join(map(link, visiting))}.",
                "",
            ]
        for ref in channel["messages"].values():
            name = _ref_name(ref["$ref"])
            if home[name] != address:
                continue
            message = messages[name]
            payload = _ref_name(message["payload"]["$ref"])
            payloads.add(payload)
            key = message.get("bindings", {}).get("kafka", {}).get("key", {})
            lines += [f"(event-{slug(name)})=", f"### {code(message['name'])}", ""]
            lines += [f"**{message.get('title', name)}**. {prose(message.get('summary', ''))}", ""]
            detail = schemas[payload].get("description", "")
            if detail and detail != message.get("summary"):
                lines += [prose(detail), ""]
            if key.get("description"):
                lines += [f"Key: {prose(key['description'])}.", ""]
            lines += fields_table(schemas[payload], link)
    lines += [
        "## Shared shapes",
        "",
        "The parts that several events carry, and the CloudEvents headers of every record.",
        "",
    ]
    for name in sorted(schemas):
        if name in payloads:
            continue
        lines += _schema_section(name, schemas[name], f"event-schema-{slug(name)}", link, "###")
    return "\n".join(lines)


# The HTTP reference ----------------------------------------------------------------------------

_METHODS = ("get", "post", "put", "patch", "delete")


def _area(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "v1" and len(parts) > 1:
        return parts[1]
    return "service"


_AREA_TITLES = {
    "offers": "Offers",
    "requests": "Requests",
    "matches": "Matches, deliveries and feedback",
    "jobs": "Transport jobs and quotes",
    "carrier": "Carrier capabilities",
    "consents": "Consents",
    "facilitator": "Facilitators",
    "feedback": "Feedback",
    "impact": "Impact",
    "ops": "Operations",
    "notifications": "Notifications and live push",
    "webhooks": "Webhooks",
    "me": "Your partner record",
    "service": "Service endpoints and pages",
}


def http_reference_markdown(document: JSON | None = None) -> str:
    doc = document if document is not None else json.loads(OPENAPI.read_text())
    schemas: dict[str, JSON] = doc["components"]["schemas"]

    def link(name: str) -> str:
        return f"{{ref}}`{name} <http-schema-{slug(name)}>`"

    lines = [prose(doc["info"].get("description", "")), ""]
    schemes = doc["components"].get("securitySchemes", {})
    for name, scheme in schemes.items():
        lines += [
            f"Authentication ({code(name)}): HTTP {scheme.get('scheme', scheme.get('type'))} "
            "token, `Authorization: Bearer <API key>`, on every operation marked *key*.",
            "",
        ]
    areas: dict[str, list[tuple[str, str, JSON]]] = {}
    for path, item in doc["paths"].items():
        for method in _METHODS:
            if method in item:
                areas.setdefault(_area(path), []).append((method.upper(), path, item[method]))
    order = [a for a in _AREA_TITLES if a in areas] + sorted(set(areas) - set(_AREA_TITLES))
    overview = [
        (
            f"[{code(m + ' ' + p)}](#http-{slug(m + ' ' + p)})",
            "key" if op.get("security") else "",
            prose(op.get("summary", "")),
        )
        for area in order
        for m, p, op in areas[area]
    ]
    lines += table(["operation", "auth", "summary"], overview)
    for area in order:
        lines += [f"## {_AREA_TITLES.get(area, area.capitalize())}", ""]
        for method, path, op in areas[area]:
            lines += [
                f"(http-{slug(method + ' ' + path)})=",
                f"### {code(method + ' ' + path)}",
                "",
            ]
            lines += [prose(op.get("summary", "")), ""]
            if op.get("description"):
                lines += [prose(op["description"]), ""]
            params = op.get("parameters", [])
            if params:
                lines += table(
                    ["parameter", "in", "required", "type", "notes"],
                    [
                        (
                            code(p["name"]),
                            p.get("in", ""),
                            "yes" if p.get("required") else "",
                            schema_type(p.get("schema", {}), link),
                            "; ".join(
                                x
                                for x in (
                                    prose(p.get("description", "")),
                                    constraints(p.get("schema", {})),
                                )
                                if x
                            ),
                        )
                        for p in params
                    ],
                )
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                schema = content.get("schema", {})
                lines += [f"Body ({code(media)}): {schema_type(schema, link)}.", ""]
            rows = []
            for status, response in op.get("responses", {}).items():
                media = ", ".join(code(m) for m in response.get("content", {}))
                shapes = [
                    schema_type(c["schema"], link)
                    for c in response.get("content", {}).values()
                    if c.get("schema")
                ]
                rows.append(
                    (code(status), prose(response.get("description", "")), media, ", ".join(shapes))
                )
            lines += table(["status", "meaning", "content", "schema"], rows)
    lines += ["## Bodies and answers", ""]
    for name in sorted(schemas):
        lines += _schema_section(name, schemas[name], f"http-schema-{slug(name)}", link, "###")
    return "\n".join(lines)


# Sphinx glue -----------------------------------------------------------------------------------


class _Generated(SphinxDirective):
    """Renders the Markdown of `render()` in place, as MyST's own `{include}` renders a file:
    straight into the page, so generated headings become sections of the page (in its table of
    contents, with their labels) in the order they are written."""

    has_content = False
    render: Callable[[], str]
    sources: tuple[Path, ...] = ()

    def run(self) -> list[Any]:
        for source in (Path(__file__), *self.sources):
            self.env.note_dependency(str(source))
        renderer = getattr(self.state, "_renderer", None)
        if renderer is None:
            raise self.error(f"{{{self.name}}} works in MyST Markdown pages only")
        renderer.nested_render_text(type(self).render(), self.lineno)
        return []


def _directive(render: Callable[[], str], sources: tuple[Path, ...] = ()) -> type[SphinxDirective]:
    return type(
        f"Generated_{render.__name__}",
        (_Generated,),
        {"render": staticmethod(render), "sources": sources},
    )


def setup(app: Sphinx) -> dict[str, Any]:
    src = ROOT / "marketplace"
    app.add_directive(
        "services-table", _directive(services_markdown, (src / "app" / "services.py",))
    )
    app.add_directive(
        "cli-reference",
        _directive(cli_markdown, (src / "app" / "cli.py", src / "app" / "audit_cli.py")),
    )
    app.add_directive("settings-table", _directive(settings_markdown, (src / "settings.py",)))
    app.add_directive(
        "topics-table", _directive(topics_markdown, (ROOT / "schemas" / "topics.py",))
    )
    app.add_directive("event-catalogue", _directive(event_catalogue_markdown, (ASYNCAPI,)))
    app.add_directive("http-reference", _directive(http_reference_markdown, (OPENAPI,)))
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
