"""Regenerate the README's benchmark table from ``benchmarks/results/*.json``.

The table sits between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` and is nothing but what the
results say: each benchmark's own rows, each naming its run's date and load average (and "noisy", with
why, when the run was). ``--check`` exits 1 when the README differs from what the results give.
Run: ``python scripts/readme_figures.py [--check]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
HEADER = ("| what | measured | baseline in the same run | run (date, 1-min load before / after) |\n"
          "|---|---|---|---|")


def run_label(result: dict) -> str:
    """The run's date and load, and why it was noisy when it was."""
    if "noisy" not in result:                    # the method records its verdict; older results have none
        load = (result.get("load_before") or result.get("load_average")
                or result.get("machine", {}).get("load_average"))
        shown = f"load {float(load[0]):.2f}" if load else "load not recorded"
        return f"measured before the benchmark method ({shown}); rerun `make bench`"
    label = (f"{result['date'][:10]}, load {result['load_before'][0]:.2f} / {result['load_after'][0]:.2f}, "
             f"others {result.get('others_busy_cores', 0):.2f} cores")
    return label + ("; **noisy**: " + "; ".join(result["noisy_why"]) if result.get("noisy") else "; quiet")


def rows(result: dict, name: str) -> list[str]:
    """The benchmark's README rows; one placeholder row for a result without any."""
    label = run_label(result).replace("|", "\\|")
    own = result.get("readme") or [{"what": f"`benchmarks/bench_{name}.py`", "measured": "see the result file",
                                    "baseline": f"`benchmarks/results/{name}.json`"}]
    return [f"| {r['what']} | {r['measured']} | {r['baseline']} | {label} |".replace("\n", " ") for r in own]


def table(results: Path = RESULTS) -> str:
    """The whole block between the markers, from every ``results/*.json`` in name order."""
    lines = [HEADER]
    for path in sorted(results.glob("*.json")):
        lines += rows(json.loads(path.read_text()), path.stem)
    return "\n".join(lines)


def render(readme_text: str, results: Path = RESULTS) -> str:
    """``readme_text`` with the block between the markers replaced by the generated table."""
    if START not in readme_text or END not in readme_text:
        raise SystemExit(f"README has no {START} ... {END} block")
    head, rest = readme_text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(results)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README differs from the results")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    new = render(text, args.results)
    if args.check:
        print("README benchmark table is current" if new == text else "README benchmark table is stale")
        return 0 if new == text else 1
    if new != text:
        args.readme.write_text(new, encoding="utf-8")
    print(f"README benchmark table from {len(list(args.results.glob('*.json')))} results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
