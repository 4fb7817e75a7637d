"""Tests of the documentation: the CLI and config references against the code, every code block of the guides run by
a test or marked with why not, the guides' examples run as written (shrunk through SWEEP_* variables where they
train), the site's configuration, and the README's size.

A fenced code block is marked by the line above it: `<!-- doc-example: NAME -->` (EXAMPLES says which test runs
NAME) or `<!-- not run: REASON -->`. Printed output (```text) needs no marker.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import re
import shlex
import shutil
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sweep.config import KEYS, RULES, SweepConfig
from tools.mkdocs_hooks import cli_command, render_cli_markers

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MKDOCS = ROOT / "mkdocs.yml"

# Pages whose code blocks must each be run by a test or say why not (the benchmark pages record measurements).
CHECKED_PAGES = sorted(
    [README, *DOCS.glob("*.md"), *DOCS.glob("guides/*.md"), *DOCS.glob("concepts/*.md"), *DOCS.glob("reference/*.md")]
)
# Every example a page marks as run, and the test that runs it.
EXAMPLES = {
    "readme": "test_readme_example_runs_as_written",
    "python-table": "test_readme_example_runs_as_written",
    "notebook": "tests/test_api.py::test_notebook_example_runs_as_written",
    "own-table": "test_table_examples_run_as_written",
    "show": "test_table_examples_run_as_written",
    "exported-config": "test_table_examples_run_as_written",
    "objectives": "test_objectives_example_runs_as_written",
    "own-model": "test_own_model_example_runs_as_written",
    "classes": "test_classes_example_runs_as_written",
    "digits-cnn-builder": "test_digits_cnn_builder_in_the_guide_is_the_example_source",
    "digits-cnn-toml": "test_digits_cnn_toml_in_the_guide_is_the_example_file",
}

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^\s*<!-- (?:doc-example: (?P<name>[\w-]+)|not run: (?P<why>.+?)) -->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page: where it is, its language, its text, and the marker above it."""

    page: Path
    line: int
    lang: str
    body: str
    example: str | None
    why_not: str | None


@functools.cache
def code_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, each with the marker on the line above it (blank lines skipped)."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = [line for line in text[: match.start()].split("\n") if line.strip()]
        marker = MARKER.match(before[-1]) if before else None
        indent = len(match.group("indent"))
        body = "\n".join(line[indent:] for line in match.group("body").split("\n"))
        blocks.append(
            Block(
                page,
                text[: match.start()].count("\n") + 1,
                match.group("lang"),
                body,
                marker and marker.group("name"),
                marker and marker.group("why"),
            )
        )
    return blocks


def example(name: str) -> Block:
    """The one block marked `<!-- doc-example: NAME -->`."""
    found = [block for page in CHECKED_PAGES for block in code_blocks(page) if block.example == name]
    assert len(found) == 1, f"doc-example {name!r} is marked {len(found)} times; expected once"
    return found[0]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -------------------------------------------------------------------------------- the README


def test_readme_is_short():
    """Check that the README stays under 150 lines: a newcomer reads it in a minute, the site holds the rest."""
    assert len(README.read_text().splitlines()) < 150


def test_readme_keeps_the_two_commands():
    """Check that the README's quick start shows `make run` and `make test` as before, and the Makefile has both."""
    lines = README.read_text().splitlines()
    assert (
        "make run    # creates .venv, installs, runs the default sweep on the reference data (1 min 19 s on 2 cores, "
        "about a minute of it the install)" in lines
    )
    assert "make test   # creates .venv, installs, runs the whole test suite (what CI runs)" in lines
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: install$", makefile, re.M) and re.search(r"^test: install$", makefile, re.M)


# -------------------------------------------------------------------------------- the CLI reference


@functools.cache
def _cli_sections() -> dict[str, str]:
    """The CLI reference page as built (option tables generated), split by its `## sweep ...` headings."""
    built = render_cli_markers((DOCS / "reference" / "cli.md").read_text())
    parts = re.split(r"^## (sweep(?: [a-z-]+)?)\s*$", built, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _cli_options() -> list[tuple[str, str]]:
    """(command path, option or argument) for the global options and every command of the Typer app."""
    group = cli_command("sweep")
    pairs = [("sweep", opt) for param in group.params for opt in param.opts]
    for name, command in sorted(group.commands.items()):
        for param in command.params:
            shown = param.name.upper() if param.param_type_name == "argument" else param.opts[0]
            pairs += [(f"sweep {name}", shown)] + [
                (f"sweep {name}", opt) for opt in param.opts[1:] + param.secondary_opts
            ]
    return pairs


@pytest.mark.parametrize("command, option", _cli_options())
def test_every_cli_option_is_in_the_reference(command, option):
    """Check that each option and argument of each command appears in that command's section of the CLI reference."""
    sections = _cli_sections()
    assert command in sections, f"docs/reference/cli.md has no '## {command}' section"
    assert f"`{option}`" in sections[command] or f"`{option}...`" in sections[command], (
        f"{option} of {command} is not in docs/reference/cli.md"
    )


@pytest.mark.parametrize("command", sorted(cli_command("sweep").commands))
def test_every_cli_command_is_in_the_commands_table(command):
    """Check that each command is listed in the CLI reference's table of commands and has its option table."""
    text = (DOCS / "reference" / "cli.md").read_text()
    assert f"| [`sweep {command}`](#sweep-{command}) |" in text
    assert f"<!-- cli-options: sweep {command} -->" in text


# -------------------------------------------------------------------------------- the config reference


@functools.cache
def _config_rows() -> dict[str, list[str]]:
    """Key -> cells (flag, default, meaning) of the config reference's table."""
    rows = {}
    for line in (DOCS / "reference" / "config.md").read_text().splitlines():
        match = re.match(r"^\| `(\w+)`[^|]*\|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


@pytest.mark.parametrize("key", sorted(RULES))
def test_every_config_key_is_in_the_reference(key):
    """Check that each key of the config's RULES has a row in the config reference, with the `sweep run` flag that sets
    it."""
    rows = _config_rows()
    assert key in rows, f"config key {key!r} (sweep/config.py RULES) has no row in docs/reference/config.md"
    flag = "--param" if key == "space" else "--" + key.replace("_", "-")
    assert f"`{flag}" in rows[key][0], f"the row of {key!r} does not name its flag {flag}"
    assert flag in _run_options(), f"{flag} is not an option of `sweep run`"


@functools.cache
def _run_options() -> frozenset[str]:
    return frozenset(opt for param in cli_command("sweep run").params for opt in param.opts)


@pytest.mark.parametrize("key", sorted(_config_rows()))
def test_config_reference_names_only_real_keys(key):
    """Check that each row of the config reference is a key the config knows (no stale or misspelt key)."""
    assert key in RULES and key in KEYS


def _shown_default(value) -> set[str]:
    """How a default may be written in the reference's default column."""
    if value is None:
        return {"none", "auto", "all"}
    if isinstance(value, tuple):
        return (
            {"none", "all"}
            if not value
            else {f"[{', '.join(format(v, 'g') if isinstance(v, float) else str(v) for v in value)}]"}
        )
    if isinstance(value, float):
        return {format(value, "g"), str(value)}
    return {str(value)}


@pytest.mark.parametrize("key", sorted(RULES))
def test_config_reference_defaults_match_the_code(key):
    """Check that the default the config reference gives for each key is SweepConfig's default."""
    rows = _config_rows()
    if key not in rows:
        pytest.skip(f"{key} has no row (test_every_config_key_is_in_the_reference fails for it)")
    default = {f.name: f.default for f in fields(SweepConfig)}[key]
    shown = rows[key][1].replace("`", "")
    assert any(shown == form or shown.startswith(form + " ") for form in _shown_default(default)), (
        f"docs/reference/config.md gives {key} the default {shown!r}; sweep/config.py has {default!r}"
    )


# -------------------------------------------------------------------------------- code blocks and their markers


@pytest.mark.parametrize("page", CHECKED_PAGES, ids=rel)
def test_every_code_block_is_run_or_says_why_not(page):
    """Check that each code block of a page (printed output aside) is marked as an example a test runs or says why
    not."""
    unmarked = [
        f"{rel(b.page)}:{b.line} ({b.lang or 'no language'})"
        for b in code_blocks(page)
        if b.example is None and b.why_not is None and b.lang != "text"
    ]
    assert not unmarked, (
        "code blocks without `<!-- doc-example: NAME -->` or `<!-- not run: REASON -->` above them: "
        + ", ".join(unmarked)
    )


def _marked_examples() -> list[str]:
    return sorted({block.example for page in CHECKED_PAGES for block in code_blocks(page) if block.example})


@pytest.mark.parametrize("name", _marked_examples())
def test_every_marked_example_is_run_by_a_test(name):
    """Check that each `doc-example` marker names an example that a test of this project runs."""
    assert name in EXAMPLES, f"doc-example {name!r} is marked in the docs but no test runs it (add it to EXAMPLES)"
    test = EXAMPLES[name]
    path, _, function = test.rpartition("::")
    source = (ROOT / path).read_text() if path else Path(__file__).read_text()
    assert f"def {function}(" in source and (not path or name in source), (
        f"{test} does not exist or does not read {name!r}"
    )


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_a_test_runs_is_in_the_docs(name):
    """Check that each example the tests run is marked exactly once in the docs (so a renamed block is noticed)."""
    example(name)


@pytest.mark.parametrize(
    "block",
    [b for page in CHECKED_PAGES for b in code_blocks(page) if b.lang == "yaml"],
    ids=lambda b: f"{rel(b.page)}:{b.line}",
)
def test_yaml_blocks_parse(block):
    """Check that each YAML block (the Kubernetes manifests) is valid YAML."""
    assert list(yaml.safe_load_all(block.body))


# -------------------------------------------------------------------------------- the site


def _mkdocs_config() -> dict:
    """mkdocs.yml, read with its `!!python/name:` tags ignored."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    return yaml.load(MKDOCS.read_text(), Loader=Loader)


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_site_builds_offline():
    """Check that mkdocs.yml loads no web fonts, no scripts or styles from elsewhere, and uses the built-in search."""
    config = _mkdocs_config()
    assert config["theme"]["name"] == "material" and config["theme"]["font"] is False
    plugins = [next(iter(p)) if isinstance(p, dict) else p for p in config["plugins"]]
    assert "search" in plugins and "mkdocstrings" in plugins
    for key in ("extra_javascript", "extra_css"):
        assert not any(str(item).startswith(("http:", "https:", "//")) for item in config.get(key, []))
    assert "analytics" not in str(config.get("extra", {}))


@pytest.mark.parametrize(
    "page", sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p.parts[-2] != "results")
)
def test_every_page_is_in_the_nav(page):
    """Check that each page under docs/ (full benchmark outputs aside) is in mkdocs.yml's nav, and nav names no missing
    page."""
    nav = _nav_pages(_mkdocs_config()["nav"])
    assert page in nav, f"docs/{page} is not in mkdocs.yml's nav"
    assert all((DOCS / entry).is_file() for entry in nav), [entry for entry in nav if not (DOCS / entry).is_file()]


@pytest.mark.parametrize(
    "name",
    sorted({m.group(1) for m in re.finditer(r"^::: ([\w.]+)", (DOCS / "reference" / "api.md").read_text(), re.M)}),
)
def test_api_reference_names_exist(name):
    """Check that each object the Python API page renders (`::: module.name`) exists and has a docstring."""
    module, _, attribute = name.rpartition(".")
    obj = getattr(importlib.import_module(module), attribute)
    assert inspect.getdoc(obj)


def _benchmark_pointers() -> list[tuple[str, int]]:
    """(file, N) for each "docs/benchmarks.md ... section N" in the code, tests, benchmarks and studies."""
    found = set()
    for folder in ("sweep", "tests", "benchmarks", "studies"):
        for path in sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.toml")):
            for match in re.finditer(r"benchmarks\.md[,;]? (?:section |sections? )?(\d+)", path.read_text()):
                found.add((rel(path), int(match.group(1))))
    return sorted(found)


@pytest.mark.parametrize("where, section", _benchmark_pointers())
def test_old_benchmark_section_numbers_still_lead_somewhere(where, section):
    """Check that each "docs/benchmarks.md section N" pointer in the code is mapped by the benchmarks index to a page
    with that anchor."""
    index = (DOCS / "benchmarks.md").read_text()
    match = re.search(rf"^\| {section} \|.*\]\(benchmarks/([\w-]+)\.md#section-{section}\) \|$", index, re.M)
    assert match, f"{where} points to section {section}, which docs/benchmarks.md does not map"
    assert f"{{#section-{section}}}" in (DOCS / "benchmarks" / f"{match.group(1)}.md").read_text()


# -------------------------------------------------------------------------------- examples, run as written


def _clean_environment(monkeypatch, **overrides: str) -> None:
    """No SWEEP_<KEY> of the machine leaks into an example; `overrides` shrink its training (fewer trials, epochs; one
    hidden layer where the churn tables would go linear, whose floor of 1,000 steps a trial outlasts any epochs)."""
    for key in KEYS:
        monkeypatch.delenv(f"SWEEP_{key.upper()}", raising=False)
    for key, value in overrides.items():
        monkeypatch.setenv(key, value)


def run_commands(block: Block) -> list[str]:
    """Run a shell block's lines in the working directory as the docs give them: `sweep ...` (or .venv/bin/sweep)
    through the Typer app in this process, `make examples` as its Makefile recipe does. Returns each output."""
    from typer.testing import CliRunner

    from sweep.cli import app
    from sweep.data.examples import write_examples

    outputs = []
    for line in block.body.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words == ["make", "examples"]:
            assert "-m sweep.data.examples studies/data" in (ROOT / "Makefile").read_text()
            write_examples("studies/data")
            outputs.append("")
            continue
        assert words[0] in ("sweep", ".venv/bin/sweep"), (
            f"{rel(block.page)}:{block.line}: cannot run {line!r} in a test"
        )
        done = CliRunner().invoke(app, words[1:])
        assert done.exit_code == 0, f"{line!r} exited {done.exit_code}: {done.output}"
        outputs.append(done.output)
    return outputs


def run_python(block: Block) -> dict:
    """Execute a Python block as written; returns its namespace."""
    namespace: dict = {}
    exec(compile(block.body, f"{rel(block.page)}:{block.line}", "exec"), namespace)
    return namespace


def write_churn_tables(folder: Path) -> None:
    """churn.csv (a small imbalanced table with a numeric and a text feature, label `churned`) and new_customers.csv."""
    from tests.conftest import make_table

    table = make_table(rows=800, positive_share=0.08).rename(columns={"label": "churned"})
    table["plan"] = np.resize(["basic", "plus", "pro", "family"], len(table))
    table.to_csv(folder / "churn.csv", index=False)
    table.drop(columns="churned").head(40).to_csv(folder / "new_customers.csv", index=False)


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """Check that the README's ten lines (the same as the Python guide's table example) sweep, export and flag rows as
    written."""
    readme, guide = example("readme"), example("python-table")
    assert readme.body == guide.body, "the README's example and docs/guides/python.md's python-table differ"
    assert len([line for line in readme.body.splitlines() if line.strip()]) <= 10
    monkeypatch.chdir(tmp_path)
    _clean_environment(monkeypatch)
    namespace = run_python(readme)
    bundle, result, flags = namespace["bundle"], namespace["result"], namespace["flags"]
    assert result.finished == 20 and set(result.best.params) == {"minority_weight", "hidden_width", "threshold"}
    assert flags.shape == (5000,) and set(np.unique(flags)) <= {0, 1}
    assert str(bundle.best["test"]["metrics"]["f1"]) in capsys.readouterr().out
    assert (tmp_path / "studies" / "sweeps.db").is_file()


def test_table_examples_run_as_written(tmp_path, monkeypatch):
    """Check that the table guide's commands, `sweep show` and the exported-config training run as written (2 epochs),
    and that every key of the bundle's best.json is in the bundle reference."""
    monkeypatch.chdir(tmp_path)
    _clean_environment(monkeypatch, SWEEP_EPOCHS="2", SWEEP_HIDDEN_LAYERS="1")
    write_churn_tables(tmp_path)
    ran = run_commands(example("own-table"))
    assert "Study churn in sqlite:///studies/sweeps.db: 60 finished trials" in ran[0]
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert list(scored.columns) == ["probability", "decision", "score"] and len(scored) == 40

    studies, shown = run_commands(example("show"))
    assert "churn" in studies and "Best trial #" in shown

    namespace = run_python(example("exported-config"))
    assert namespace["flags"].shape == (800,) and namespace["x"].shape[1] == len(
        namespace["best"]["data"]["encoded_features"]
    )

    best = json.loads((tmp_path / "exports" / "churn" / "best.json").read_text())
    reference = (DOCS / "reference" / "bundle.md").read_text()
    missing = [key for key in best if f"`{key}`" not in reference]
    assert not missing, f"best.json keys missing from docs/reference/bundle.md: {missing}"


def test_objectives_example_runs_as_written(tmp_path, monkeypatch):
    """Check that the objectives guide's cost and Pareto sweeps, the pick in `show` and the export run as written (1
    epoch)."""
    monkeypatch.chdir(tmp_path)
    _clean_environment(monkeypatch, SWEEP_EPOCHS="1", SWEEP_HIDDEN_LAYERS="1")
    write_churn_tables(tmp_path)
    cost, pareto, shown, exported = run_commands(example("objectives"))
    assert "Study churn-cost" in cost and "Study churn-pareto" in pareto
    assert "picked from the Pareto front: best recall with precision >= 0.2" in shown
    best = json.loads((tmp_path / "exports" / "churn-pareto" / "best.json").read_text())
    assert best["objective"]["picked_by"] and f"Exported trial #{best['trial']} of churn-pareto" in exported


def test_own_model_example_runs_as_written(tmp_path, monkeypatch):
    """Check that the own-model guide's four commands (example data, the digits CNN sweep, export, predict) run as
    written, shrunk to 2 trials of 1 epoch on one validation split through SWEEP_* variables."""
    (tmp_path / "studies").mkdir()
    for name in ("digits-cnn.toml", "models.py"):
        shutil.copy(ROOT / "studies" / name, tmp_path / "studies" / name)
    monkeypatch.chdir(tmp_path)
    _clean_environment(monkeypatch, SWEEP_TRIALS="2", SWEEP_EPOCHS="1", SWEEP_CV="0")
    ran = run_commands(example("own-model"))
    assert "Study digits-cnn in sqlite:///studies/sweeps.db: 2 finished trials" in ran[1]
    scored = pd.read_csv(tmp_path / "digits-scored.csv")
    assert list(scored.columns) == ["probability", "decision", "score"] and len(scored) == 1673


def test_classes_example_runs_as_written(tmp_path, monkeypatch):
    """Check that the guide to several classes runs as written (its 20 trials of 1 epoch): example data, sweep, export,
    predict and report, with every best.json key of a bundle of several classes in the bundle reference."""
    monkeypatch.chdir(tmp_path)
    _clean_environment(monkeypatch, SWEEP_EPOCHS="1", SWEEP_MIN_STEPS="0")
    ran = run_commands(example("classes"))
    assert "Study digit-classes in sqlite:///studies/sweeps.db: 20 finished trials" in ran[1]
    assert "the rule's gain over argmax" in ran[2]
    scored = pd.read_csv(tmp_path / "digit-classes-scored.csv")
    assert list(scored.columns[:5]) == [f"probability_{digit}" for digit in range(5)] and len(scored) == 592
    assert (tmp_path / "reports" / "digit-classes" / "report.md").is_file()
    best = json.loads((tmp_path / "exports" / "digit-classes" / "best.json").read_text())
    reference = (DOCS / "reference" / "bundle.md").read_text()
    missing = [key for key in best if f"`{key}`" not in reference]
    assert not missing, f"best.json keys missing from docs/reference/bundle.md: {missing}"


def test_digits_cnn_builder_in_the_guide_is_the_example_source():
    """Check that the builder the own-model guide shows is studies/models.py's digits_cnn, docstring aside."""
    source = (ROOT / "studies" / "models.py").read_text()
    function = next(
        node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == "digits_cnn"
    )
    lines = ast.get_source_segment(source, function).splitlines()
    body = [line for line in lines if not line.strip().startswith('"""')]
    assert example("digits-cnn-builder").body.strip() == "\n".join(body).strip()


def test_digits_cnn_toml_in_the_guide_is_the_example_file():
    """Check that the settings the own-model guide shows are studies/digits-cnn.toml's, comments aside."""
    shown = tomllib.loads(example("digits-cnn-toml").body)
    assert shown == tomllib.loads((ROOT / "studies" / "digits-cnn.toml").read_text())
