"""The evaluation run: every section with hashes and progress, incremental results with resume, refusal to
mix artifacts, plots, the config and the `lendsafe evaluate` command (stand-in writers, small limits)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from evaluation_fixtures import BAD_TEXT, StandInGenerator, held_out, mode_by_rank, small_config  # noqa: F401
from lendsafe.cli import main
from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError
from lendsafe.evaluation.config import EvaluationConfig
from lendsafe.evaluation.gate import check_gate, gate_summary
from lendsafe.evaluation.results import (
    SCHEMA_VERSION, EvaluationMismatchError, EvaluationResults, load_records, load_results, records_path,
)
from lendsafe.evaluation.run import held_out_sample, run_evaluation

needs_pdftotext = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")


# ---------------------------------------------------------------------------- a whole small run

@pytest.fixture(scope="module")
def small_run(tmp_path_factory, held_out):
    examples, _ = held_out
    folder = tmp_path_factory.mktemp("evaluation")
    generators = {"lora": StandInGenerator(examples, mode_by_rank),
                  "base": StandInGenerator(examples, lambda e: "bad", adapter_sha256=None)}
    config = small_config(folder)
    seen = []
    results = run_evaluation(config, lambda done, total, stage: seen.append((done, total, stage)),
                             generators=generators, bar=False)
    return results, config, seen, generators


@needs_pdftotext
def test_small_run_writes_every_section_with_hashes_and_progress(small_run):
    results, config, seen, _ = small_run
    assert isinstance(results, EvaluationResults) and results.schema_version == SCHEMA_VERSION and results.complete
    assert set(results.sections) == {"risk", "reasons", "retrieval", "explanations", "notices"}
    artifacts = results.artifacts
    assert set(artifacts["risk_model_sha256"]) == {"hmda", "credit"} and artifacts["corpus_sha256"]
    assert artifacts["writers"]["lora"]["adapter_sha256"] == "a" * 64 and artifacts["catalog_sha256"]
    for name in ("hmda", "credit"):
        risk = results.risk.datasets[name]
        assert risk["held_out"]["shared_rows"] == 0 and risk["matches_recorded_metrics"]
        assert 0.5 < risk["model"]["auc"] <= 1 and risk["logistic_baseline"]["calibration"]
    stages = {stage for *_, stage in seen}
    assert {"risk models", "explanations: lora", "explanations: base", "explanations: template"} <= stages
    assert all(done <= total for done, total, _ in seen)
    assert results.notices.notices == config.limit
    assert results.notices.completeness_pass_rate == 1.0


@needs_pdftotext
def test_writer_figures_follow_what_each_writer_wrote(small_run):
    results, config, _, _ = small_run
    section = results.to_dict()["sections"]["explanations"]           # the plain dict, as in the JSON
    assert section["sample"]["overlap_with_training"]["shared_prompts"] == 0
    records = {r["id"]: r for r in load_records(config.out) if r["kind"] == "decision" and r["writer"] == "lora"}
    modes = {i: mode_by_rank({"id": i}) for i in records}
    lora, base, template = (section["writers"][w] for w in ("lora", "base", "template"))
    assert lora["first_pass_rate"] == pytest.approx(sum(m == "good" for m in modes.values()) / len(modes), abs=1e-4)
    assert lora["fallback_rate"] == pytest.approx(sum(m == "bad" for m in modes.values()) / len(modes), abs=1e-4)
    assert lora["passed_on_retry_rate"] == pytest.approx(sum(m == "retry" for m in modes.values()) / len(modes), abs=1e-4)
    assert base["first_pass_rate"] == 0 and base["fallback_rate"] == 1
    assert base["faithfulness"]["first_attempt"]["forbidden_phrase_rate"] == 1
    assert all(w["final_pass_rate"] == 1 for w in (lora, base, template))
    assert template["text_similarity"]["first_attempt"]["rougeL"] == pytest.approx(1.0)
    assert template["text_similarity"]["unrelated_floor"]["rougeL"] < 1.0
    assert base["text_similarity"]["first_attempt"]["rougeL"] < template["text_similarity"]["first_attempt"]["rougeL"]
    assert section["sample"]["composer_reproduces_reference"] == config.limit
    assert template["batch1_latency_ms"]["n"] == 1 and template["latency_ms"]["n"] == config.limit
    assert base["batch1_latency_ms"]["n"] == 0            # the comparison writer is timed in batches only


@needs_pdftotext
def test_the_comparison_writer_writes_the_first_decisions_of_the_same_order(small_run):
    results, config, _, _ = small_run
    section = results.explanations
    order = [e["id"] for e in held_out_sample(config, Settings())[0]]
    written = {w: [r["id"] for r in load_records(config.out) if r["kind"] == "decision" and r["writer"] == w]
               for w in ("lora", "base")}
    assert sorted(written["lora"]) == sorted(order) and sorted(written["base"]) == sorted(order[:config.comparison_limit])
    assert section.writers["base"].decisions == section.writers["lora_no_passages"].decisions == 4
    assert section.sample["comparison_evaluated"] == 8             # both comparison writers, 4 decisions each
    assert section.writers["lora"].decisions == config.limit == 6


@needs_pdftotext
def test_plots_exist_and_load_results_resolves_their_paths(small_run):
    _, config, _, _ = small_run
    loaded = load_results(config.out)
    expected = {"risk_hmda", "risk_credit", "writer_metrics", "faithfulness_failures", "latency"}
    assert expected <= set(loaded.plots)
    for entry in loaded.plots.values():
        for key in ("png", "data"):
            assert entry[key].startswith("/") and (config.out.parent / "plots").resolve().as_posix() in entry[key]
            assert open(entry[key], "rb").read(4)
    assert json.loads(config.out.read_text())["plots"]["latency"]["png"] == "plots/latency.png"


@needs_pdftotext
def test_rerun_resumes_without_generating_again(small_run):
    results, config, _, generators = small_run
    before = generators["lora"].prompts
    again = run_evaluation(config, generators=generators, bar=False)
    assert generators["lora"].prompts == before
    assert again.writers == results.writers


def test_interrupted_run_keeps_finished_decisions_and_resumes_there(tmp_path, held_out):
    examples, _ = held_out
    config = small_config(tmp_path, writers=("lora",), sections=("explanations",), plots=False, batch1_sample=0,
                          chunk_size=2)
    interrupted = StandInGenerator(examples, lambda e: "good", stop_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(config, generators={"lora": interrupted}, bar=False)
    kept = [r for r in load_records(config.out) if r["kind"] == "decision"]
    assert 0 < len(kept) < config.limit
    resumed = StandInGenerator(examples, lambda e: "good")
    results = run_evaluation(config, generators={"lora": resumed}, bar=False)
    assert resumed.prompts == config.limit - len(kept)
    assert results.writers["lora"].decisions == config.limit
    assert len({r["id"] for r in load_records(config.out) if r["kind"] == "decision"}) == config.limit


def test_results_of_other_artifacts_or_settings_are_never_mixed(tmp_path, held_out):
    examples, _ = held_out
    config = small_config(tmp_path, writers=("lora",), sections=("explanations",), plots=False, batch1_sample=0,
                          limit=2)
    run_evaluation(config, generators={"lora": StandInGenerator(examples, lambda e: "good")}, bar=False)
    retrained = StandInGenerator(examples, lambda e: "good", adapter_sha256="c" * 64)
    with pytest.raises(EvaluationMismatchError, match="adapter_sha256"):
        run_evaluation(config, generators={"lora": retrained}, bar=False)
    with pytest.raises(EvaluationMismatchError, match="limit"):
        run_evaluation(small_config(tmp_path, writers=("lora",), sections=("explanations",), plots=False,
                                    batch1_sample=0, limit=3), generators={"lora": retrained}, bar=False)
    config.out.unlink()
    with pytest.raises(EvaluationMismatchError):       # the records file alone is refused too
        run_evaluation(config, generators={"lora": retrained}, bar=False)
    fresh = replace(config, fresh=True)
    results = run_evaluation(fresh, generators={"lora": retrained}, bar=False)
    assert results.artifacts["writers"]["lora"]["adapter_sha256"] == "c" * 64
    rows = [json.loads(line) for line in records_path(config.out).read_text().splitlines()]
    assert rows[0]["header"]["artifacts"]["writers"]["lora"]["adapter_sha256"] == "c" * 64


def test_a_refused_final_text_counts_against_final_faithfulness(tmp_path, monkeypatch):
    import lendsafe.explain.composer

    monkeypatch.setattr(lendsafe.explain.composer, "compose", lambda decision: BAD_TEXT)
    config = small_config(tmp_path, writers=("template",), sections=("explanations",), plots=False,
                          batch1_sample=0, limit=3)
    results = run_evaluation(config, bar=False)
    writer = results.writers["template"]
    assert writer.final_pass_rate == 0 and writer.not_issued == 3
    results.writers["lora"] = writer
    results.artifacts["writers"]["lora"] = {}
    summary = gate_summary(results)
    assert any("final faithfulness" in p for p in check_gate(summary, {**summary, "first_pass_rate": 0.0}))


@pytest.mark.parametrize("changes, field_name", [
    ({"writers": ("lora", "gpt")}, "writers"), ({"sections": ()}, "sections"), ({"limit": 0}, "limit"),
    ({"split": "train"}, "split"), ({"perturbation_scale": 0.9}, "perturbation_scale"),
])
def test_config_names_the_bad_field(changes, field_name):
    with pytest.raises(ConfigurationError, match=field_name):
        EvaluationConfig(**changes)


def test_every_config_field_is_documented():
    assert all(EvaluationConfig.help_table().values())


def test_cli_runs_a_small_evaluation_and_rejects_bad_flags(tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["evaluate", "--writers", "template", "--sections", "explanations", "--limit", "2", "--out",
                 str(out), "--no-plots", "--quiet", "--batch1-sample", "0"]) == 0
    printed = capsys.readouterr().out
    assert "template" in printed and str(out) in printed and load_results(out).complete
    with pytest.raises(SystemExit):
        main(["evaluate", "--limit", "many"])
    assert "'all'" in capsys.readouterr().err
    assert main(["evaluate", "--writers", "gpt", "--out", str(out)]) == 2
    assert "writers" in capsys.readouterr().err
    assert main(["evaluate", "--write-baseline", "--out", str(out)]) == 2
    assert "--gate" in capsys.readouterr().err


