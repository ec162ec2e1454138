"""The benchmark method and the README table: rounds interleave contenders and stop once settled, busy or
unsettled runs are marked noisy and never replace a quiet result unless forced, and the README's block is
exactly what ``scripts/readme_figures.py`` makes of ``benchmarks/results``. No timing is asserted."""
from __future__ import annotations

import importlib.util
import json

import pytest

from benchmarks import method
from lendsafe.config import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("readme_figures", PROJECT_ROOT / "scripts" / "readme_figures.py")
readme_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_figures)


class FakeClock:
    """A clock that only moves when a contender 'works'."""

    def __init__(self):
        self.now, self.calls = 0.0, []

    def __call__(self) -> float:
        return self.now

    def contender(self, name: str, costs):
        costs = iter(costs)

        def work():
            self.calls.append(name)
            self.now += next(costs)
        return work


def test_rounds_take_turns_and_stop_once_the_round_medians_agree():
    clock = FakeClock()
    steady = [0.001] * 1000
    timings = method.interleave({"a": clock.contender("a", steady), "b": clock.contender("b", [0.002] * 1000)},
                                calls=4, min_rounds=3, max_rounds=10, warmup=0, clock=clock)
    assert [len(t.rounds) for t in timings.values()] == [3, 3]
    assert clock.calls[:4] == ["a", "b", "b", "a"]                  # the order rotates call by call
    summary = method.summaries(timings, baseline="a")
    assert summary["a"]["p50_ms"] == pytest.approx(1.0) and summary["b"]["ratio_to_baseline_p50"] == pytest.approx(2.0)
    assert summary["b"]["spread"] == 0 and summary["b"]["calls"] == 12


def test_one_outlying_round_among_steady_ones_settles():
    timing = method.Timing(rounds=[[1.0]] * 11 + [[1.4]])
    assert 0 < timing.spread() <= method.MAX_SPREAD
    assert method.Timing(rounds=[[1.0], [2.0], [1.0], [2.0]]).spread() > method.MAX_SPREAD


def test_rounds_run_to_the_limit_when_they_do_not_settle_and_say_so():
    clock = FakeClock()
    drifting = [0.001 * (1 + n // 2) for n in range(1000)]          # slower every round
    timings = method.interleave({"a": clock.contender("a", drifting)}, calls=2, min_rounds=3, max_rounds=6,
                                warmup=0, clock=clock)
    assert len(timings["a"].rounds) == 6
    assert timings["a"].spread() > method.MAX_SPREAD and not method.settled(timings)


@pytest.mark.parametrize("before, others, spreads, expected", [
    ([0.3, 0.5, 0.6], 0.1, {"x": 0.02}, []),
    ([1.4, 0.5, 0.6], 0.1, {"x": 0.02}, ["1-min load average 1.40 >= 1 before the run"]),
    ([0.3, 0.5, 0.6], 1.2, {"x": 0.02}, ["other processes kept 1.20 cores busy during the run (load after 2.00)"]),
    ([0.3, 0.5, 0.6], 0.1, {"x": 0.25}, ["round medians spread more than 10%: x 25%"]),
])
def test_a_run_is_noisy_when_the_machine_was_busy_or_the_rounds_spread(before, others, spreads, expected):
    assert method.noisy_reasons(before, [2.0, 1.0, 1.0], others, spreads) == expected


def _record(noisy: bool, value: int) -> dict:
    return {"noisy": noisy, "noisy_why": ["busy"] if noisy else [], "figures": {"value": value}}


def test_a_noisy_run_does_not_replace_a_quiet_result_unless_forced(tmp_path):
    assert method.write_result(tmp_path, "x", _record(False, 1)) == tmp_path / "x.json"
    kept_apart = method.write_result(tmp_path, "x", _record(True, 2))
    assert kept_apart == tmp_path / "noisy" / "x.json"
    assert json.loads((tmp_path / "x.json").read_text())["figures"]["value"] == 1
    assert method.write_result(tmp_path, "x", _record(True, 3), force=True) == tmp_path / "x.json"
    assert json.loads((tmp_path / "x.json").read_text())["figures"]["value"] == 3


def test_noisy_replaces_noisy_or_old_results_and_quiet_replaces_anything(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"load_average": [3.9, 3.7, 3.6]}))
    assert method.write_result(tmp_path, "old", _record(True, 1)) == tmp_path / "old.json"
    assert method.write_result(tmp_path, "old", _record(True, 2)) == tmp_path / "old.json"
    assert method.write_result(tmp_path, "old", _record(False, 3)) == tmp_path / "old.json"
    assert method.is_quiet(tmp_path / "old.json") and not method.is_quiet(tmp_path / "absent.json")


def test_a_run_records_date_load_versions_and_its_verdict(tmp_path, monkeypatch, capsys):
    loads = iter([[0.2, 0.3, 0.4], [1.7, 0.9, 0.5]])
    monkeypatch.setattr(method, "load_average", lambda: next(loads))
    run = method.Run("demo", "pytest", results=tmp_path)
    record = run.finish({"p50_ms": 1.0}, [{"what": "w", "measured": "m", "baseline": "b"}], {"demo": 0.5})
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["load_before"] == [0.2, 0.3, 0.4] and saved["load_after"] == [1.7, 0.9, 0.5]
    assert saved["versions"]["python"] and saved["versions"]["pytest"] != "absent" and saved["date"]
    assert saved["noisy"] is True and saved["noisy_why"] == ["round medians spread more than 10%: demo 50%"]
    assert record["written_to"].endswith("demo.json") and "noisy" in capsys.readouterr().out


def _result(tmp_path, name: str, **fields) -> None:
    base = {"date": "2026-01-02T03:04:05+00:00", "load_before": [0.25, 0.3, 0.3], "load_after": [0.5, 0.3, 0.3],
            "others_busy_cores": 0.1, "noisy": False, "noisy_why": [],
            "readme": [{"what": f"{name} figure", "measured": "1 ms | fast", "baseline": "shap 2 ms"}]}
    (tmp_path / f"{name}.json").write_text(json.dumps({**base, **fields}))


def test_the_table_names_each_runs_date_load_and_noise(tmp_path):
    _result(tmp_path, "b_quiet")
    _result(tmp_path, "a_noisy", noisy=True, noisy_why=["1-min load average 3.10 >= 1 before the run"],
            load_before=[3.1, 2.0, 1.0])
    (tmp_path / "c_old.json").write_text(json.dumps({"load_average": [3.9, 3.7, 3.6]}))
    (tmp_path / "d_old.json").write_text(json.dumps({"load_before": [5.21, 1, 1], "load_after": [5, 1, 1],
                                                     "date": "2026-01-01T00:00:00+00:00"}))
    lines = readme_figures.table(tmp_path).splitlines()
    assert lines[2] == ("| a_noisy figure | 1 ms | fast | shap 2 ms | 2026-01-02, load 3.10 / 0.50, others 0.10 "
                        "cores; **noisy**: 1-min load average 3.10 >= 1 before the run |")
    assert lines[3].endswith("| 2026-01-02, load 0.25 / 0.50, others 0.10 cores; quiet |")
    assert "measured before the benchmark method (load 3.90)" in lines[4]
    assert "measured before the benchmark method (load 5.21)" in lines[5] and len(lines) == 6     # no verdict: not quiet


def test_render_replaces_only_the_marked_block(tmp_path):
    _result(tmp_path, "one")
    text = f"intro\n{readme_figures.START}\nstale\n{readme_figures.END}\noutro\n"
    rendered = readme_figures.render(text, tmp_path)
    assert rendered.startswith("intro\n<!-- bench:start -->\n| what |") and rendered.endswith("<!-- bench:end -->\noutro\n")
    assert "stale" not in rendered and readme_figures.render(rendered, tmp_path) == rendered
    with pytest.raises(SystemExit, match="no <!-- bench:start -->"):
        readme_figures.render("no markers here", tmp_path)


def test_the_readme_block_is_what_the_script_makes_of_the_committed_results():
    text = readme_figures.README.read_text(encoding="utf-8")
    assert readme_figures.render(text) == text, "run `python scripts/readme_figures.py`"


BENCHMARKS = sorted((PROJECT_ROOT / "benchmarks").glob("bench_*.py"))
METHOD_CALLS = ("method.parser(", "method.Run(", "method.interleave(", ".finish(")


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.stem)
def test_every_benchmark_script_runs_on_the_method(script):
    source = script.read_text(encoding="utf-8")
    missing = [call for call in METHOD_CALLS if call not in source]
    assert not missing, f"{script.name} does not call {missing}: put it on benchmarks/method.py"
    assert "RESULTS.write_text" not in source and "OUT.write_text" not in source, \
        f"{script.name} writes its result itself instead of through method.Run.finish"


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "benchmarks" / "results").glob("*.json")),
                         ids=lambda path: path.stem)
def test_a_result_of_the_method_names_its_date_load_verdict_and_rows(path):
    result = json.loads(path.read_text())
    if "noisy" not in result:
        pytest.skip("measured before the benchmark method (the README says so)")
    assert result["date"] and len(result["load_before"]) == 3 and len(result["load_after"]) == 3
    assert isinstance(result["noisy"], bool) and bool(result["noisy_why"]) == result["noisy"]
    assert result["readme"] and all({"what", "measured", "baseline"} <= set(row) for row in result["readme"])


def test_targets_say_met_or_not_met(capsys):
    goals = {"p95_ms": method.target(2600.0, 2500.0), "per_s": method.target(600.0, 500.0, at_most=False, lost=0)}
    assert goals["p95_ms"] == {"target": "<= 2500", "measured": 2600.0, "met": False}
    assert goals["per_s"]["met"] is True and goals["per_s"]["lost"] == 0
    method.print_targets(goals)
    out = capsys.readouterr().out
    assert "p95_ms: <= 2500, measured 2600.0 -> NOT met" in out and "per_s: >= 500, measured 600.0 -> met" in out


def test_self_timed_contenders_count_only_the_seconds_they_report():
    reported = iter([2.0, 0.5] * 10)
    timer = method.SelfTimed({"harness": lambda: next(reported), "bare": lambda: next(reported)})
    timings = method.interleave(timer.contenders, calls=1, min_rounds=3, max_rounds=3, warmup=0, clock=timer.clock)
    assert sorted(timings["harness"].samples + timings["bare"].samples) == [500.0] * 3 + [2000.0] * 3


def test_cycling_contenders_take_the_next_input_each_call():
    seen = []
    contender = method.cycling(seen.append, [1, 2, 3])
    for _ in range(4):
        contender()
    assert seen == [1, 2, 3, 1]


def test_a_trial_run_can_be_kept_out_of_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LENDSAFE_BENCH_RESULTS", str(tmp_path))
    record = method.Run("trial").finish({}, [], {})
    assert (tmp_path / "trial.json").is_file() and record["written_to"] == str(tmp_path / "trial.json")
    assert not (method.RESULTS / "trial.json").exists()
