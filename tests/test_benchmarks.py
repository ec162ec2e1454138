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
    lines = readme_figures.table(tmp_path).splitlines()
    assert lines[2] == ("| a_noisy figure | 1 ms | fast | shap 2 ms | 2026-01-02, load 3.10 / 0.50, others 0.10 "
                        "cores; **noisy**: 1-min load average 3.10 >= 1 before the run |")
    assert lines[3].endswith("| 2026-01-02, load 0.25 / 0.50, others 0.10 cores; quiet |")
    assert "measured before the benchmark method (load 3.90)" in lines[4] and len(lines) == 5


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
