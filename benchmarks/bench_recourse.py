"""Recourse speed and correctness: ``find_recourse`` beside a brute-force grid on the same model, in the same
run, with the benchmark method (``benchmarks/method.py``).

* correctness, over every held-out denial of each dataset: each single-feature option found by bisection
  equals the first approving value of the whole grid (every grid value scored); each combination's total
  normalised change beside the best point of the brute-force product grid (the full product where it has at
  most ``FULL_PRODUCT`` points, else each feature thinned to fit); every option re-scores as approval.
* speed, per denial, taking turns: ``find_recourse`` with single-feature options only and with combinations
  (up to 3 features), beside the brute-force grid doing the same (every grid value, every product point).

Targets (issue 22): single-feature options <= 100 ms per denial, with combinations <= 1 s (p95).
Run: ``python benchmarks/bench_recourse.py [--datasets hmda credit] [--sample 60] [--force]``.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402

TARGETS = {"single_p95_ms": 100.0, "combinations_p95_ms": 1000.0}
FULL_PRODUCT = 60_000      # brute-force product grids up to this many points are complete, larger ones thinned


def denials(dataset_name: str) -> tuple[object, list[dict]]:
    """The scorer and every held-out application it denies."""
    from lendsafe.config import Settings
    from lendsafe.evaluation.model import held_out_applications, load_held_out
    from lendsafe.decide.scoring import Scorer

    scorer = Scorer.load(dataset_name)
    applications = held_out_applications(load_held_out(dataset_name, Settings()))
    return scorer, [d.application for d in scorer.score_many(applications) if d.denied]


# ---------------------------------------------------------------------------- the brute-force baseline

def risks(scorer, base: dict, changes: list[dict]) -> np.ndarray:
    return scorer.model.predict_proba(scorer.matrix([{**base, **c} for c in changes]))


def brute_single(scorer, base: dict, axis) -> object:
    """The first approving value of the whole grid (None when none approves)."""
    ok = np.flatnonzero(risks(scorer, base, [{axis.name: v} for v in axis.values]) < scorer.model.threshold)
    return axis.values[ok[0]] if ok.size else None


def brute_combination(scorer, base: dict, group) -> tuple[float | None, bool]:
    """The smallest total normalised change over the product grid of ``group``, and whether the grid was full."""
    sizes = [len(a.values) for a in group]
    full = int(np.prod(sizes)) <= FULL_PRODUCT
    per_axis = sizes if full else [min(s, int(FULL_PRODUCT ** (1 / len(group)))) for s in sizes]
    grids = [[a.values[i] for i in sorted(set(np.linspace(0, s - 1, n).round().astype(int)))]
             for a, s, n in zip(group, sizes, per_axis)]
    points = list(itertools.product(*grids))
    ok = risks(scorer, base, [dict(zip((a.name for a in group), p)) for p in points]) < scorer.model.threshold
    costs = [sum(a.cost(v) for a, v in zip(group, p)) for p, good in zip(points, ok) if good]
    return (min(costs) if costs else None), full


def brute_force(scorer, base: dict, max_changes: int) -> dict:
    """Every single-feature grid and every product grid up to ``max_changes`` features (the timed baseline)."""
    from lendsafe.recourse import actionable_axes

    axes, _ = actionable_axes(scorer.spec, base)
    found = {(a.name,): brute_single(scorer, base, a) for a in axes}
    for size in range(2, max_changes + 1):
        for group in itertools.combinations([a for a in axes if a.monotone], size):
            found[tuple(a.name for a in group)] = brute_combination(scorer, base, group)[0]
    return found


# ---------------------------------------------------------------------------- correctness over every denial

def correctness(scorer, applications: list[dict]) -> dict:
    from lendsafe.recourse import actionable_axes, find_recourse
    from lendsafe.recourse.search import _combination

    counts = {"denials": len(applications), "single_agree": 0, "single_checked": 0, "options": 0,
              "options_rescored_approve": 0, "infeasible": 0, "combinations": 0, "combinations_full_grid": 0,
              "combination_cost_ratios": []}
    for base in applications:
        result = find_recourse(scorer, base)
        counts["infeasible"] += result.infeasible
        counts["options"] += len(result.options)
        counts["options_rescored_approve"] += sum(
            scorer.score({**result.decision.application, **{c.feature: c.after for c in o.changes}}).decision
            == "approve" for o in result.options)
        axes, _ = actionable_axes(scorer.spec, result.decision.application)
        _singles(scorer, result, axes, counts)
        _combinations(scorer, result.decision.application, axes, counts, _combination)
    ratios = counts.pop("combination_cost_ratios")
    counts["combination_cost_ratio_to_brute_force"] = _spread(ratios)
    return counts


def _singles(scorer, result, axes, counts: dict) -> None:
    found = {o.features[0]: o.changes[0].after for o in result.options if len(o.features) == 1}
    for axis in axes:
        counts["single_checked"] += 1
        counts["single_agree"] += found.get(axis.name) == brute_single(scorer, result.decision.application, axis)


def _combinations(scorer, base: dict, axes, counts: dict, combination) -> None:
    monotone = [a for a in axes if a.monotone]
    for size in (2, 3):
        for group in itertools.combinations(monotone, size):
            ours = combination(scorer, base, sorted(group, key=lambda a: len(a.values)))
            brute, full = brute_combination(scorer, base, list(group))
            if ours is None or brute is None:
                continue
            counts["combinations"] += 1
            counts["combinations_full_grid"] += full
            counts["combination_cost_ratios"].append(ours.cost / brute if brute else 1.0)


def _spread(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    v = np.asarray(values)
    return {"count": int(v.size), "median": round(float(np.median(v)), 4), "max": round(float(v.max()), 4),
            "share_at_most_1": round(float(np.mean(v <= 1 + 1e-9)), 4)}


# ---------------------------------------------------------------------------- speed

def speed(scorer, applications: list[dict], sample: int) -> tuple[dict, dict[str, float]]:
    from lendsafe.recourse import find_recourse

    picked = [applications[i] for i in np.random.default_rng(0).permutation(len(applications))[:sample]]
    contenders = {"recourse_single": lambda a: find_recourse(scorer, a, max_changes=1),
                  "brute_force_single": lambda a: brute_force(scorer, a, 1),
                  "recourse_combinations": lambda a: find_recourse(scorer, a, max_changes=3),
                  "brute_force_combinations": lambda a: brute_force(scorer, a, 3)}
    cycling = {name: _cycling(function, picked) for name, function in contenders.items()}
    timings = method.interleave(cycling, calls=len(picked), min_rounds=3, max_rounds=6, warmup=2)
    figures = method.summaries(timings)
    for ours, baseline in (("recourse_single", "brute_force_single"),
                           ("recourse_combinations", "brute_force_combinations")):
        figures[ours]["times_faster_than_brute_force_p50"] = round(
            figures[baseline]["p50_ms"] / figures[ours]["p50_ms"], 2)
    return figures, {name: t.spread() for name, t in timings.items()}


def _cycling(function, inputs: list):
    items = itertools.cycle(inputs)
    return lambda: function(next(items))


def targets(figures: dict) -> dict:
    single, combos = figures["recourse_single"]["p95_ms"], figures["recourse_combinations"]["p95_ms"]
    return {"single_p95_ms": {"target": TARGETS["single_p95_ms"], "measured": single,
                              "met": single <= TARGETS["single_p95_ms"]},
            "combinations_p95_ms": {"target": TARGETS["combinations_p95_ms"], "measured": combos,
                                    "met": combos <= TARGETS["combinations_p95_ms"]}}


def readme_rows(name: str, figures: dict, checks: dict) -> list[dict[str, str]]:
    speed_, ratio = figures["speed"], checks["combination_cost_ratio_to_brute_force"]
    one, many = speed_["recourse_single"], speed_["recourse_combinations"]
    return [{"what": f"recourse, single-feature options, one {name} held-out denial (p50 / p95)",
             "measured": f"{one['p50_ms']:.1f} / {one['p95_ms']:.1f} ms; bisection = whole grid for "
                         f"{checks['single_agree']} of {checks['single_checked']} features",
             "baseline": f"brute-force grid on the same model {speed_['brute_force_single']['p50_ms']:.1f} / "
                         f"{speed_['brute_force_single']['p95_ms']:.1f} ms"},
            {"what": f"recourse with combinations (up to 3 features), one {name} denial (p50 / p95)",
             "measured": f"{many['p50_ms']:.1f} / {many['p95_ms']:.1f} ms; {checks['options_rescored_approve']} of "
                         f"{checks['options']} options re-score as approval; total change / brute force's best: "
                         f"median {ratio.get('median', 'n/a')}, max {ratio.get('max', 'n/a')}",
             "baseline": f"brute-force product grid {speed_['brute_force_combinations']['p50_ms']:.1f} / "
                         f"{speed_['brute_force_combinations']['p95_ms']:.1f} ms"}]


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["hmda", "credit"])
    parser.add_argument("--sample", type=int, default=60, help="denials per dataset in the timed rounds")
    args = parser.parse_args(argv)
    run = method.Run("recourse", "xgboost", "pydantic")
    figures, spreads, rows, goals = {}, {}, [], {}
    for name in args.datasets:
        scorer, applications = denials(name)
        checks = correctness(scorer, applications)
        timed, spread = speed(scorer, applications, args.sample)
        figures[name] = {"correctness": checks, "speed": timed}
        spreads.update({f"{name} {k}": v for k, v in spread.items()})
        rows += readme_rows(name, figures[name], checks)
        goals[name] = targets(timed)
        print(name, {k: v for k, v in checks.items()})
    for name, goal in goals.items():
        for key, target in goal.items():
            print(f"{name} {key}: target {target['target']} measured {target['measured']} "
                  f"{'met' if target['met'] else 'NOT met'}")
    run.finish(figures, rows, spreads, force=args.force, targets=goals,
               threads="one thread; the model scores through the scorer's lookup tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
