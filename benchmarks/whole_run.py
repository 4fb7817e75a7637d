"""The whole `sweep run` (defaults, SQLite, a fresh study) timed on real tables, this tree against an earlier revision
side by side, one after the other on the same machine: what a code change costs or saves where the user sees it.

    python benchmarks/whole_run.py --before REV [--tables breast_cancer diabetes] [--repeats 1] [--set KEY=VALUE ...]

Run it from a copy of the tree (`--repo` names the repository of REV) while you keep editing this one.

REV (any git revision) is extracted with `git archive` into a temporary folder; each run is a fresh process whose
`sweep` package comes from that folder or from this tree. Prints a markdown table: seconds of each, their ratio, and
the best trial's value and parameters of each (the same trials give the same best trial).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from tables import write_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN = "import sys; sys.path.insert(0, sys.argv.pop(1)); from sweep.cli import main; sys.argv[0] = 'sweep'; main()"


def extract(repository: Path, revision: str, into: Path) -> Path:
    """The `sweep` package of `revision` of `repository`, extracted under `into`."""
    archive = subprocess.run(["git", "archive", revision, "sweep"], cwd=repository, capture_output=True, check=True)
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def timed_run(tree: Path, csv: Path, work: Path, name: str, settings: list[str]) -> tuple[float, str, str]:
    """Seconds of one whole `sweep run` with `tree`'s package, its depth line and its best-trial lines."""
    options = [f"--{key.replace('_', '-')}={value}" for key, value in (s.split("=", 1) for s in settings)]
    command = [sys.executable, "-c", RUN, str(tree), "run", "--data", str(csv), "--target", "label"]
    command += ["--study", name, "--storage", f"sqlite:///{work / (name + '.db')}", *options]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sweep run failed on {csv.stem} with {tree}: {done.stderr.strip().splitlines()[-1]}")
    depth = re.search(r"hidden_layers = auto: (a linear network|one hidden layer)", done.stdout + done.stderr)
    best = re.search(r"Best trial #(\d+): (\S+) = ([\d.]+).*\n\s*(.*?)\s*->", done.stdout)
    best_text = f"#{best.group(1)} {best.group(3)} ({best.group(4)})" if best else "?"
    return seconds, depth.group(1) if depth else "-", best_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare this tree with")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the git repository of --before (default: this tree)")
    parser.add_argument("--tables", nargs="+", default=["breast_cancer", "diabetes", "cars_europe", "hmda_deny"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="sweep run options as KEY=VALUE (trials=10)")
    args = parser.parse_args()
    print(f"Machine: {machine()}\nBefore: {args.before}; options: {' '.join(args.set) or 'defaults'}\n")
    print("| table | rows | depth | before | this tree | ratio | best before | best now |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        before = extract(args.repo, args.before, work / "before")
        for table in args.tables:
            csv = write_table(table, work)
            rows = sum(1 for _ in csv.open()) - 1
            for repeat in range(args.repeats):
                old = timed_run(before, csv, work, f"{table}-before-{repeat}", args.set)
                new = timed_run(ROOT, csv, work, f"{table}-now-{repeat}", args.set)
                print(
                    f"| {table} | {rows:,} | {new[1]} | {old[0]:.0f} s | {new[0]:.0f} s | {old[0] / new[0]:.1f}x "
                    f"| {old[2]} | {new[2]} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
