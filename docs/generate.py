"""Reference pages generated from the code at build time: config keys and the CLI."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout
from pathlib import Path


def _config_table(schema, title: str) -> str:
    from hepx.config.schema import describe

    rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for key, expected, default, doc in describe(schema):
        rows.append(f"| `{key}` | {expected} | `{default}` | {doc} |")
    return f"### {title}\n\n" + "\n".join(rows) + "\n"


def config_reference() -> str:
    """Markdown tables of every configuration the code validates."""
    from hepx.config.evaluate import EVALUATE_SCHEMA
    from hepx.config.run import RUN_SCHEMA
    from hepx.kinds import KINDS

    parts = ["## Run config (`hepx train`)\n"]
    for section, schema in RUN_SCHEMA.items():
        parts.append(_config_table(schema, f"`{section}`"))
    parts.append(
        "## Reader options (`reader:` of `hepx convert --config`, `hepx score --config`)\n"
    )
    for kind in KINDS.values():
        parts.append(_config_table(kind.reader_schema, f"{kind.title} (`{kind.name}`)"))
    parts.append("## Evaluation options (`hepx evaluate`, `hepx.evaluation.evaluate`)\n")
    parts.append(_config_table(EVALUATE_SCHEMA, "options"))
    return "\n".join(parts)


def _help(parser: argparse.ArgumentParser) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        parser.print_help()
    return buf.getvalue()


def cli_reference() -> str:
    """``--help`` of ``hepx`` and of every subcommand, as Markdown code blocks."""
    from hepx.cli import build_parser

    parser = build_parser()
    parts = ["## `hepx`\n", "```text\n" + _help(parser) + "```\n"]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = set()
    for name, p in sub.choices.items():
        if id(p) in seen:  # aliases
            continue
        seen.add(id(p))
        parts.append(f"## `hepx {name}`\n")
        parts.append("```text\n" + _help(p) + "```\n")
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            for sub_name, sp in action.choices.items():
                parts.append(f"### `hepx {name} {sub_name}`\n")
                parts.append("```text\n" + _help(sp) + "```\n")
    return "\n".join(parts)


def shipped_configs() -> str:
    """The shipped run configs, by name."""
    from hepx.config import shipped_configs as names

    runs = [n for n in names() if "/" in n and not n.startswith(("datasets/", "convert/"))]
    return "\n".join(f"- `{n}`" for n in runs) + "\n"


def write_all(out: Path) -> None:
    """Write the generated pages (only when their content changed)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("config.md", config_reference()),
        ("cli.md", cli_reference()),
        ("shipped.md", shipped_configs()),
    ):
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
