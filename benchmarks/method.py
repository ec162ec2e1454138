"""The benchmark method every ``benchmarks/bench_*.py`` uses.

* Contenders take turns call by call within a round (the order rotates), so a noisy neighbour slows
  them alike; rounds repeat until every contender's figure is known within ``max_spread`` (the 95%
  interval of its round medians' mean, relative; or the round limit is reached, and the result says the
  spread is too wide).
* The run records its date, the 1-min/5-min/15-min load average before and after, the CPU time other
  processes used while it ran, and the versions of Python and the libraries it names.
* A run is ``noisy`` (with why) when the machine was busy or the rounds did not settle. A noisy run does
  not replace a quiet result already in ``benchmarks/results`` unless forced (``--force``): it is kept in
  ``benchmarks/results/noisy/`` instead, and the run prints "noisy".
* ``$LENDSAFE_BENCH_RESULTS`` names another results folder (a trial run that leaves ``benchmarks/results``
  alone).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUSY_LOAD = 1.0          # 1-min load average (or other processes' busy cores) at which a run is noisy
MAX_SPREAD = 0.10        # relative 95% half-width of the round medians' mean at which rounds have settled
Z95 = 1.96
MIN_ROUNDS, MAX_ROUNDS = 3, 12


# ---------------------------------------------------------------------- the machine
def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages from /proc/loadavg (os.getloadavg elsewhere)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return [round(x, 2) for x in os.getloadavg()]


def busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat; 0 where absent)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in (fields + ["0"] * 8)[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process and the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def versions(*packages: str) -> dict[str, str]:
    """Python and the installed version of each named distribution ("absent" when not installed)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


# ---------------------------------------------------------------------- interleaved rounds
@dataclass
class Timing:
    """Every call's milliseconds, round by round."""

    rounds: list[list[float]] = field(default_factory=list)

    @property
    def samples(self) -> list[float]:
        return sorted(x for r in self.rounds for x in r)

    def round_medians(self) -> list[float]:
        return [statistics.median(r) for r in self.rounds if r]

    def spread(self) -> float:
        """Half-width of the 95% interval of the mean round median, relative to the median round median:
        how far the figure could move with more rounds (one outlying round widens it, it does not decide)."""
        medians = self.round_medians()
        middle = statistics.median(medians) if medians else 0.0
        if len(medians) < 2 or not middle:
            return 0.0
        return Z95 * statistics.stdev(medians) / len(medians) ** 0.5 / middle

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {"p50_ms": round(statistics.median(s), 4), "p95_ms": round(percentile(s, 95), 4),
                "min_ms": round(s[0], 4), "calls": len(s), "rounds": len(self.rounds),
                "round_medians_ms": [round(m, 4) for m in self.round_medians()], "spread": round(self.spread(), 4)}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))]


def cycling(function: Callable[[Any], Any], inputs: list) -> Callable[[], Any]:
    """A no-argument contender calling ``function`` on the next input each time (round and round)."""
    items = itertools.cycle(inputs)
    return lambda: function(next(items))


def interleave(contenders: dict[str, Callable[[], Any]], calls: int, *, min_rounds: int = MIN_ROUNDS,
               max_rounds: int = MAX_ROUNDS, max_spread: float = MAX_SPREAD, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Time ``calls`` calls of each contender per round, taking turns call by call (the order rotates),
    until every contender's round medians agree within ``max_spread`` or ``max_rounds`` is reached."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    timings = {name: Timing() for name in names}
    for number in range(max_rounds):
        for timing in timings.values():
            timing.rounds.append([])
        for call in range(calls):
            shift = (number + call) % len(names)
            for name in names[shift:] + names[:shift]:
                start = clock()
                contenders[name]()
                timings[name].rounds[-1].append((clock() - start) * 1000)
        if number + 1 >= min_rounds and settled(timings, max_spread):
            break
    return timings


class SelfTimed:
    """Contenders that return the seconds they measured themselves (the part of a call that is the figure,
    e.g. a harness's own section timing); pass ``contenders`` and ``clock`` to ``interleave``."""

    def __init__(self, contenders: dict[str, Callable[[], float]]):
        self.now = 0.0
        self.contenders = {name: self._wrap(function) for name, function in contenders.items()}

    def _wrap(self, function: Callable[[], float]) -> Callable[[], None]:
        def timed() -> None:
            self.now += function()
        return timed

    def clock(self) -> float:
        return self.now


def settled(timings: dict[str, Timing], max_spread: float = MAX_SPREAD) -> bool:
    return all(t.spread() <= max_spread for t in timings.values())


def summaries(timings: dict[str, Timing], baseline: str | None = None) -> dict[str, dict[str, Any]]:
    """p50/p95 and spread of each contender, with its p50 as a ratio to the baseline's."""
    out = {name: t.summary() for name, t in timings.items()}
    if baseline:
        for figure in out.values():
            figure["ratio_to_baseline_p50"] = round(figure["p50_ms"] / out[baseline]["p50_ms"], 4)
    return out


# ---------------------------------------------------------------------- targets
def target(measured: float, goal: float, at_most: bool = True, **detail: Any) -> dict[str, Any]:
    """A target check: the measured figure beside the goal (``at_most``: lower is better) and whether it is met."""
    met = measured <= goal if at_most else measured >= goal
    return {"target": f"{'<=' if at_most else '>='} {goal:g}", "measured": measured, "met": bool(met), **detail}


def print_targets(targets: dict[str, dict[str, Any]]) -> None:
    """One line per target: met or NOT met."""
    for name, check in targets.items():
        print(f"target {name}: {check['target']}, measured {check['measured']} -> "
              f"{'met' if check['met'] else 'NOT met'}")


# ---------------------------------------------------------------------- one run
def results_dir() -> Path:
    """Where results are written: ``$LENDSAFE_BENCH_RESULTS`` when set, else ``benchmarks/results``."""
    return Path(os.environ.get("LENDSAFE_BENCH_RESULTS") or RESULTS)


class Run:
    """One benchmark run: load and CPU before, then ``finish`` judges it and writes the result."""

    def __init__(self, name: str, *packages: str, results: Path | None = None, busy_load: float = BUSY_LOAD,
                 max_spread: float = MAX_SPREAD):
        self.name, self.busy_load, self.max_spread = name, busy_load, max_spread
        self.results = results or results_dir()
        self.record: dict[str, Any] = {
            "benchmark": name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_before": load_average(), "versions": versions("numpy", *packages),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        }
        self._wall, self._busy, self._own = time.perf_counter(), busy_seconds(), own_seconds()

    def finish(self, figures: dict[str, Any], readme: list[dict[str, str]], spreads: dict[str, float],
               force: bool = False, **extra: Any) -> dict[str, Any]:
        """Add the load after, the others' CPU and the noisy verdict; write the result (or keep a noisy
        one apart when a quiet result exists and ``force`` is false). Returns the record."""
        wall = time.perf_counter() - self._wall
        others = max(0.0, (busy_seconds() - self._busy) - (own_seconds() - self._own)) / wall if wall else 0.0
        self.record.update(load_after=load_average(), others_busy_cores=round(others, 2),
                           seconds=round(wall, 1), figures=figures, readme=readme,
                           spreads={k: round(v, 4) for k, v in spreads.items()}, **extra)
        why = noisy_reasons(self.record["load_before"], self.record["load_after"], others, spreads,
                            self.busy_load, self.max_spread)
        self.record.update(noisy=bool(why), noisy_why=why)
        written = write_result(self.results, self.name, self.record, force)
        self.record["written_to"] = str(written.relative_to(ROOT) if written.is_relative_to(ROOT) else written)
        print(("noisy: " + "; ".join(why)) if why else "quiet run", f"-> {self.record['written_to']}")
        return self.record


def noisy_reasons(load_before: list[float], load_after: list[float], others_busy: float,
                  spreads: dict[str, float], busy_load: float = BUSY_LOAD, max_spread: float = MAX_SPREAD) -> list[str]:
    """Why a run cannot be trusted as a quiet-machine figure (empty when it can)."""
    why = []
    if load_before[0] >= busy_load:
        why.append(f"1-min load average {load_before[0]:.2f} >= {busy_load:g} before the run")
    if others_busy >= busy_load:
        why.append(f"other processes kept {others_busy:.2f} cores busy during the run (load after "
                   f"{load_after[0]:.2f})")
    wide = [f"{name} {value:.0%}" for name, value in spreads.items() if value > max_spread]
    if wide:
        why.append(f"round medians spread more than {max_spread:.0%}: " + ", ".join(wide))
    return why


def write_result(results: Path, name: str, record: dict[str, Any], force: bool = False) -> Path:
    """Write ``results/<name>.json``; a noisy record that would replace a quiet one (and is not forced)
    goes to ``results/noisy/<name>.json`` instead. Returns the path written."""
    target = results / f"{name}.json"
    if record.get("noisy") and not force and is_quiet(target):
        target = results / "noisy" / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1) + "\n")
    return target


def is_quiet(path: Path) -> bool:
    """Whether ``path`` holds a result this method judged quiet."""
    try:
        return json.loads(path.read_text()).get("noisy") is False
    except (OSError, ValueError, AttributeError):
        return False


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the method's ``--force``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--force", action="store_true",
                        help="write the result even when the run is noisy and a quiet result exists")
    return parser
