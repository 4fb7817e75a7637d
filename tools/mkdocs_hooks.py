"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`): the CLI reference's option tables are generated
from the Typer app in sweep/cli.py when the site is built, so they cannot drift from `sweep --help`.

A page asks for one with a marker on a line of its own (indented inside a block, the table is too):
`<!-- cli-options: sweep -->` (the global options) or `<!-- cli-options: sweep run -->` (one command's arguments and
options). tests/test_docs.py renders the pages through the same function and checks that every option of every command
appears.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"^( *)<!-- cli-options: (sweep(?: [a-z-]+)?) -->$", re.M)


def cli_command(path: str):
    """The Click command behind `sweep` or `sweep NAME` (Typer builds Click commands)."""
    import typer.main

    from sweep.cli import app

    group = typer.main.get_command(app)
    words = path.split()[1:]
    if not words:
        return group
    if words[0] not in group.commands:
        raise ValueError(f"no command {path!r} in sweep.cli; commands: {', '.join(sorted(group.commands))}")
    return group.commands[words[0]]


def _cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _value(param) -> str:
    """What an option takes: its metavar or type name; nothing for a flag."""
    if getattr(param, "is_flag", False):
        return ""
    names = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH", "list[str]": "TEXT"}
    bare = param.bare_type()
    name = param.metavar or names.get(bare, bare.upper())
    return f"{name} (repeatable)" if param.multiple else name


def _default(param) -> str:
    """The default an option shows in --help, as the reader sees it."""
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return f"`{shown}`"
    if getattr(param, "is_flag", False):
        return "off"
    if getattr(param, "required", False):
        return "required"
    if param.default is None or param.default == ():
        return "-"
    return f"`{param.default}`"


def options_markdown(path: str) -> str:
    """A Markdown table of the arguments and options of `sweep` or `sweep NAME`, from the Typer app itself."""
    command = cli_command(path)
    rows = ["| argument or option | value | default | what it does |", "|---|---|---|---|"]
    for param in command.params:
        if param.param_type_name == "argument":
            name = param.name.upper() + ("..." if param.nargs == -1 else "")
            rows.append(
                f"| `{name}` | argument | {'required' if param.required else '-'} | "
                f"{_cell(getattr(param, 'help', '') or '')} |"
            )
            continue
        names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        rows.append(f"| {names} | {_cell(_value(param))} | {_cell(_default(param))} | {_cell(param.help or '')} |")
    rows.append("| `--help` | | | Show the command's help and exit. |")
    return "\n".join(rows)


def render_cli_markers(markdown: str) -> str:
    """Replace every `<!-- cli-options: ... -->` marker with its generated table, indented as the marker is."""

    def table(match: re.Match) -> str:
        indent = match.group(1)
        return "\n".join(indent + line for line in options_markdown(match.group(2)).split("\n"))

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    return render_cli_markers(markdown)
