"""The fair-lending analysis (lendsafe.fairness and `lendsafe fairness`): every ratio recomputes from its
counts, AIR intervals contain their estimate, small groups are flagged, bad options are refused with the
field named (exit 2), the scoring path never reads a protected attribute, hashes match the artifacts,
the LDA search lists only what it promises, and the report PDF reads back.

The real hmda analysis (with the LDA search) runs at most once per test session: its folder is kept in
the pytest cache and reused while the model, data and code hashes are unchanged.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lendsafe.decide.application import parse_application
from lendsafe.cli import main
from lendsafe.config import PACKAGE_DIR
from lendsafe.decide.datasets import load_dataset
from lendsafe.errors import ConfigurationError, InvalidApplicationError
from lendsafe.evaluation.store import file_sha256
from lendsafe.fairness import FairnessConfig, current_hashes, load_fairness, stale
from lendsafe.fairness.analysis import applications, score_rows
from lendsafe.fairness.disparity import chi_square, holm
from lendsafe.fairness.groups import Attribute, attribute, check_groups, select_attributes
from lendsafe.fairness.lda import CUTOFF_MOVES, REGULARISATION, SEED_OFFSETS
from lendsafe.fairness.outcomes import Z95, air, outcomes
from lendsafe.fairness.results import results_sha256
from lendsafe.fairness.tables import TABLES
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.decide.scoring import Scorer

@pytest.fixture(scope="session")
def hmda(fairness_hmda_folder) -> dict:
    return load_fairness(fairness_hmda_folder)


def comparisons(results: dict):
    for name, section in results["outcomes"].items():
        for c in section["comparisons"]:
            yield name, section, c


# ---------------------------------------------------------------------------- counts and ratios

def katz(a1: int, n1: int, a0: int, n0: int) -> list[float]:
    ratio = (a1 / n1) / (a0 / n0)
    se = math.sqrt(1 / a1 - 1 / n1 + 1 / a0 - 1 / n0)
    return [ratio * math.exp(-Z95 * se), ratio * math.exp(Z95 * se)]


def test_every_ratio_recomputes_from_its_counts(hmda):
    for name, section, c in comparisons(hmda):
        p, k = section["groups"][c["protected"]], section["groups"][c["control"]]
        for group in (p, k):
            assert group["approval_rate"] == pytest.approx(group["approved"] / group["n"])
            assert group["false_denial_rate"] == pytest.approx(group["good_denied"] / group["good_outcomes"])
        assert c["air"] == pytest.approx((p["approved"] / p["n"]) / (k["approved"] / k["n"]))
        assert c["ci95"] == pytest.approx(katz(p["approved"], p["n"], k["approved"], k["n"]))
        assert c["observed_air"] == pytest.approx((p["good_outcomes"] / p["n"]) / (k["good_outcomes"] / k["n"]))
        deciles = section["risk_deciles"]["deciles"]
        assert sum(d["groups"][c["protected"]]["n"] for d in deciles) == p["n"]
        assert sum(d["groups"][c["protected"]]["denied"] for d in deciles) == p["n"] - p["approved"]
        assert sum(g["n"] for g in section["groups"].values()) == hmda["dataset"]["rows"]


def test_the_decile_gap_recomputes_from_the_decile_counts(hmda):
    for name, section, c in comparisons(hmda):
        both = [d["groups"] for d in section["risk_deciles"]["deciles"]
                if d["groups"][c["protected"]]["n"] and d["groups"][c["control"]]["n"]]
        gaps = [g[c["protected"]]["denied"] / g[c["protected"]]["n"] - g[c["control"]]["denied"] / g[c["control"]]["n"]
                for g in both]
        expected = np.average(gaps, weights=[g[c["protected"]]["n"] for g in both])
        assert section["risk_deciles"]["weighted_gaps"][c["protected"]]["model_denial_gap"] == pytest.approx(expected)


def test_reason_shares_and_tests_recompute_from_the_counts(hmda):
    from scipy.stats import chi2_contingency

    for name, section in hmda["reasons"].items():
        first = section["first_reason"]["groups"]
        for table in first.values():
            assert sum(table["named"].values()) == table["denials"]      # each denial has one first reason
            for code, named in table["named"].items():
                assert table["share"][code] == pytest.approx(named / table["denials"])
        counts = np.array([[first[g]["named"][c] for c in section["codes"]] for g in first])
        counts = counts[:, counts.sum(axis=0) > 0]
        test = section["first_reason"]["independence"]
        asymptotic = test["p_asymptotic"] if test["approximate"] else test["p_value"]
        assert asymptotic == pytest.approx(chi2_contingency(counts, correction=False)[1])
        assert sum(hmda["outcomes"][name]["groups"][g]["n"] - hmda["outcomes"][name]["groups"][g]["approved"]
                   for g in first) == sum(t["denials"] for t in first.values())


def test_small_expected_counts_get_a_permutation_p_value():
    from lendsafe.fairness.disparity import reason_disparity

    labels = np.array(["control"] * 200 + ["old"] * 10, dtype=object)
    attr = Attribute("age", "age", "", "control", labels)
    denied = np.zeros(len(labels), bool)
    denied[:80] = True
    denied[200] = True
    codes = [("A", "B") if i % 2 else ("B",) for i in range(200)] + [("RARE",)] + [()] * 9
    result = reason_disparity(attr, denied, codes)["first_reason"]["independence"]
    assert result["approximate"] and result["p_asymptotic"] < 0.001
    # exact answer: the one rare-reason denial falls in the small group with chance 1/81
    assert result["p_value"] == pytest.approx(1 / 81, abs=0.006) and result["p_method"].startswith("permutation")


def test_holm_adjustment_is_monotone_and_never_below_the_raw_p():
    raw = [0.01, 0.04, 0.03, 0.5]
    adjusted = holm(raw)
    assert all(a >= r for a, r in zip(adjusted, raw)) and adjusted[0] == pytest.approx(0.04)
    assert adjusted[2] == pytest.approx(0.09) and adjusted[1] == pytest.approx(0.09)
    assert chi_square(np.array([[3, 0], [0, 0]]))["p_value"] is None


# ---------------------------------------------------------------------------- intervals and small groups

@pytest.mark.parametrize("counts", [(57, 80, 362, 396), (1, 3, 50, 50), (3, 3, 40, 90), (0, 5, 10, 20), (5, 5, 5, 5)])
def test_the_air_interval_contains_its_point_estimate(counts):
    result = air(*counts)
    low, high = result["ci95"]
    assert low <= result["air"] and (high is None or result["air"] <= high)


def test_every_reported_interval_contains_its_estimate(hmda):
    for _, _, c in comparisons(hmda):
        assert c["ci95"][0] <= c["air"] <= c["ci95"][1]
    assert "Katz" in next(iter(hmda["outcomes"].values()))["air_method"]


def test_small_groups_are_flagged_and_kept():
    labels = np.array(["control"] * 60 + ["tiny"] * 4 + ["big"] * 40, dtype=object)
    attr = Attribute("x", "test", "test", "control", labels)
    risk = np.linspace(0.01, 0.9, len(labels))
    result = outcomes(attr, risk, 0.5, risk < 0.6, min_group=30)
    assert result["groups"]["tiny"]["small"] and result["groups"]["tiny"]["n"] == 4
    assert not result["groups"]["big"]["small"]
    by_group = {c["protected"]: c for c in result["comparisons"]}
    assert by_group["tiny"]["small_group"] and not by_group["big"]["small_group"]


def test_credit_elderly_group_in_the_test_split_is_flagged_small():
    dataset, model = load_dataset("credit"), RiskModel.load(model_dir("credit"))
    rows = np.sort(model.test_index_)
    attr = attribute(dataset.spec, dataset.raw, select_attributes(dataset.spec, ("Age",))[0]).subset(rows)
    result = outcomes(attr, model.predict_proba(dataset.X.iloc[rows]), model.threshold, dataset.y[rows] == 0, 30)
    assert result["control"] == "< 62" and result["protected"] == [">= 62"]
    assert result["groups"][">= 62"]["n"] < 30 and result["comparisons"][0]["small_group"]


# ---------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("args, message", [
    (["--attribute", "race"], "attribute must be one of the hmda protected attributes (afam, single); got 'race'"),
    (["--dataset", "credit", "--attribute", "afam"], "attribute must be one of the credit protected attributes"),
])
def test_unknown_attributes_name_the_field_and_exit_2(args, message, capsys, tmp_path):
    assert main(["fairness", "--no-lda", "--quiet", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "fairness.json").exists()


@pytest.mark.parametrize("args, field", [
    (["--split", "train"], "--split"), (["--dataset", "german"], "--dataset"), (["--min-group", "0"], "--min-group"),
    (["--min-group", "many"], "--min-group"),
])
def test_bad_option_values_name_the_option_and_exit_2(args, field, capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(["fairness", "--no-lda", "--quiet", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and f"argument {field}" in err and "Traceback" not in err


def test_an_empty_group_is_refused_with_the_attribute_named():
    only_control = Attribute("afam", "race", "", "no", np.array(["no"] * 5, dtype=object))
    with pytest.raises(ConfigurationError, match="attribute afam: no protected group"):
        check_groups(only_control)
    no_control = Attribute("afam", "race", "", "no", np.array(["yes"] * 5, dtype=object))
    with pytest.raises(ConfigurationError, match="control group 'no' has no rows"):
        check_groups(no_control)


def test_a_split_without_denials_is_refused():
    dataset, model = load_dataset("hmda"), RiskModel.load(model_dir("hmda"))
    approved = np.flatnonzero(model.predict_proba(dataset.X) < model.threshold)[:50]
    with pytest.raises(ConfigurationError, match="split: the analysed rows contain no denial"):
        score_rows(model, dataset, approved)


def test_bad_settings_are_refused_by_the_config():
    for changes, field in (({"split": "train"}, "split"), ({"dataset": "x"}, "dataset"),
                           ({"min_group_size": 0}, "min_group_size"), ({"auc_tolerance": 0.5}, "auc_tolerance")):
        with pytest.raises(ConfigurationError, match=field):
            FairnessConfig(**changes)


def test_an_unwritable_out_folder_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["fairness", "--no-lda", "--quiet", "--out", str(blocker / "sub")]) == 2
    assert "out: cannot create the folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the protected-attribute guarantee

@pytest.mark.parametrize("name", ["hmda", "credit"])
def test_protected_attributes_are_not_model_inputs(name):
    dataset, model = load_dataset(name), RiskModel.load(model_dir(name))
    protected = set(dataset.spec.protected_columns)
    assert protected and protected == {c.column for c in select_attributes(dataset.spec)}
    inputs = set(model.booster_.feature_names) | set(model.metadata_["features"])
    sources = {f.column or f.name for f in dataset.spec.input_fields}
    assert not protected & inputs and not protected & sources
    assert not {p.lower() for p in protected} & {f.name.lower() for f in dataset.spec.features}


POISON = {"afam": lambda s: s.map({"yes": "no", "no": "yes"}), "single": lambda s: s.iloc[::-1].to_numpy(),
          "Age": lambda s: 99, "Marital": lambda s: "widow"}


@pytest.mark.parametrize("name", ["hmda", "credit"])
def test_scoring_never_reads_protected_attributes(name):
    """Decisions from data with the protected columns poisoned, or removed, are byte-identical."""
    from lendsafe.decide.datasets import applications_frame, Dataset

    dataset = load_dataset(name)
    rows = np.arange(0, len(dataset.y), 7)

    def decisions(raw) -> bytes:
        data = Dataset(dataset.spec, raw, applications_frame(dataset.spec, raw), dataset.X, dataset.y, dataset.sha256)
        scored = Scorer.load(name).score_many(applications(data, rows))
        return json.dumps([d.score_dict() for d in scored], sort_keys=True).encode()

    poisoned = dataset.raw.copy()
    for column in dataset.spec.protected_columns:
        poisoned[column] = POISON[column](poisoned[column])
    assert (poisoned[list(dataset.spec.protected_columns)] != dataset.raw[list(dataset.spec.protected_columns)]).any().all()
    original = decisions(dataset.raw)
    assert decisions(poisoned) == original
    assert decisions(dataset.raw.drop(columns=list(dataset.spec.protected_columns))) == original


def test_an_application_carrying_a_protected_attribute_is_refused_at_the_boundary():
    application = applications(load_dataset("hmda"), np.array([0]))[0]
    with pytest.raises(InvalidApplicationError, match="afam is not a field of this application"):
        parse_application({**application, "afam": "yes"}, "hmda")


# ---------------------------------------------------------------------------- hashes, files, LDA

def test_results_carry_the_hashes_of_model_data_and_code(hmda):
    artifacts = hmda["artifacts"]
    assert artifacts["risk_model_sha256"] == RiskModel.load(model_dir("hmda")).sha256
    assert artifacts["data_sha256"] == load_dataset("hmda").sha256
    assert artifacts["code_sha256"]["fairness/outcomes.py"] == file_sha256(PACKAGE_DIR / "fairness" / "outcomes.py")
    assert results_sha256(hmda) == hmda["results_sha256"]
    assert stale(hmda, current_hashes("hmda")) == []
    changed = json.loads(json.dumps(hmda["artifacts"]))
    changed["risk_model_sha256"] = "0" * 64
    assert stale(hmda, changed) and "risk_model_sha256" in stale(hmda, changed)[0]


def test_every_output_file_is_written(hmda):
    folder = Path(hmda["folder"])
    for name, make in TABLES.items():
        with (folder / f"{name}.csv").open(newline="") as handle:
            assert len(list(csv.DictReader(handle))) == len(list(make(hmda))) > 0
    assert set(hmda["files"]["plots"]) == {"air", "reasons_afam", "reasons_single", "lda_frontier"}
    for file in hmda["files"]["plots"].values():
        assert (folder / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_lda_search_covers_the_documented_family(hmda):
    lda = hmda["lda"]
    names = [r["name"] for r in lda["alternatives"]]
    spec = load_dataset("hmda").spec
    assert names[0] == "current model"
    assert {f"drop {f.name}" for f in spec.model_features} <= set(names)
    families = [r["family"] for r in lda["alternatives"]]
    assert families.count("seed") == len(SEED_OFFSETS) and families.count("cutoff") == len(CUTOFF_MOVES)
    assert families.count("regularisation") == len(REGULARISATION) and "monotone" in families
    assert families.count("reductions") == len(hmda["attributes"])
    equal_rate = [r for r in lda["alternatives"] if r["family"] not in ("cutoff",)]
    assert all(abs(r["approval_rate"] - lda["alternatives"][0]["approval_rate"]) < 0.05 for r in equal_rate)


def test_the_current_model_in_the_lda_search_matches_the_outcomes(hmda):
    current = hmda["lda"]["alternatives"][0]
    for name, section, c in comparisons(hmda):
        assert current["air"][name]["groups"][c["protected"]]["air"] == pytest.approx(c["air"])


def test_lda_candidates_raise_air_within_the_auc_tolerance(hmda):
    lda = hmda["lda"]
    current = lda["alternatives"][0]
    by_name = {r["name"]: r for r in lda["alternatives"]}
    for name, found in lda["candidates"].items():
        for c in found:
            row = by_name[c["name"]]
            assert row["family"] != "seed" and c["air_gain"] > 0
            assert current["auc"] - row["auc"] <= lda["auc_tolerance"]
            assert row["air"][name]["worst"] > current["air"][name]["worst"] and current["air"][name]["worst"] < 1
        listed = {c["name"] for c in found}
        missed = [r for r in lda["alternatives"][1:] if r["family"] != "seed" and r["name"] not in listed
                  and current["auc"] - r["auc"] <= lda["auc_tolerance"]
                  and min(r["air"][name]["worst"] or 0, 1) > current["air"][name]["worst"]]
        assert not missed


def test_no_candidates_when_no_group_is_approved_less_than_its_control():
    from lendsafe.fairness.lda import candidates

    def row(name, family, auc, worst):
        return {"name": name, "family": family, "auc": auc, "approval_rate": 0.8,
                "air": {"age": {"worst": worst, "worst_group": ">= 62"}}}

    rows = [row("current model", "current", 0.80, 1.2), row("drop x", "drop_feature", 0.80, 1.4)]
    assert candidates(rows, 0.005) == {"age": []}
    rows = [row("current model", "current", 0.80, 0.7), row("drop x", "drop_feature", 0.797, 0.75),
            row("drop y", "drop_feature", 0.79, 0.9), row("seed", "seed", 0.80, 0.8)]
    assert [c["name"] for c in candidates(rows, 0.005)["age"]] == ["drop x"]


def test_proxy_check_scores_every_input(hmda):
    spec = load_dataset("hmda").spec
    for section in hmda["proxies"].values():
        for data in section.values():
            inputs = {r["input"] for r in data["inputs"]}
            assert {f.name for f in spec.model_features} < inputs
            assert all(0 <= r["auc"] <= 1 for r in data["inputs"])


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils")
def test_the_report_pdf_reads_back(hmda):
    pdf = Path(hmda["folder"]) / hmda["files"]["report"]
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert "Fair-lending analysis" in flat and hmda["results_sha256"] in flat
    for _, _, c in comparisons(hmda):
        assert f"{c['air']:.3f}" in flat and f"[{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]" in flat
    assert "Nothing is switched automatically" in flat and "sex" in flat
    for candidate in (c for found in hmda["lda"]["candidates"].values() for c in found):
        assert candidate["name"] in flat


def test_the_command_runs_one_attribute_without_the_search(tmp_path, capsys):
    assert main(["fairness", "--dataset", "hmda", "--attribute", "single", "--no-lda", "--quiet",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    results = load_fairness(tmp_path)
    assert list(results["outcomes"]) == ["single"] and "lda" not in results
    c = results["outcomes"]["single"]["comparisons"][0]
    assert f"AIR single yes vs no: {c['air']:.3f}" in out and "not recorded in this data" in out
