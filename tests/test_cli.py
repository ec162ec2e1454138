"""`lendsafe` CLI: every command listed, `score` prints the issue's JSON from a file or stdin, bad input
exits 2 with one line per field and no traceback; the installed console script runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lendsafe import cli
from lendsafe.cli import COMMAND_MODULES, build_parser, main
from lendsafe.config import PROJECT_ROOT
from lendsafe.errors import ArtifactNotFoundError
from lendsafe.decide.risk import model_dir

EXAMPLES = PROJECT_ROOT / "data" / "examples"
CONSOLE_SCRIPT = Path(sys.executable).parent / "lendsafe"
ISSUE_COMMANDS = {"train-risk", "score", "prepare"}
BAD = {"debt_to_income": -1, "housing_expense_to_income": "high", "loan_to_value": 0.8,
       "consumer_credit_history": 1, "mortgage_credit_history": 1, "public_bad_credit_record": False,
       "mortgage_insurance_denied": False, "self_employed": False, "race": "x"}


def run_script(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CONSOLE_SCRIPT), *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=PROJECT_ROOT)


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_every_registered_command_is_listed_by_the_console_script():
    assert CONSOLE_SCRIPT.exists(), "the lendsafe console script is not installed in this environment"
    result = run_script("--help")
    assert result.returncode == 0 and result.stderr == ""
    commands = subcommands()
    assert ISSUE_COMMANDS <= set(commands) and len(commands) >= len(COMMAND_MODULES)
    for command in commands:
        assert f"    {command} " in result.stdout or f"    {command}\n" in result.stdout, command


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("reference", ["population", "cutoff"])
def test_score_prints_the_issue_json(capsys, reference):
    assert main(["score", str(EXAMPLES / "hmda_denial.json"), "--reference", reference]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["decision", "risk", "threshold", "reasons", "reference", "dropped_candidates", "model"]
    assert out["decision"] == "deny" and out["reference"] == reference and 0 < len(out["reasons"]) <= 4
    assert all(list(r) == ["code", "statement", "feature", "value", "contribution"] for r in out["reasons"])
    meta = json.loads((model_dir("hmda") / "metadata.json").read_text())
    assert out["model"]["dataset"] == "hmda" and out["model"]["sha256"] == meta["model_sha256"]
    assert out["threshold"] == meta["threshold"]


def test_score_another_dataset_and_an_approval(capsys):
    assert main(["score", str(EXAMPLES / "credit_denial.json"), "--dataset", "credit"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["dataset"] == "credit"
    assert main(["score", str(EXAMPLES / "hmda_approval.json")]) == 0
    approval = json.loads(capsys.readouterr().out)
    assert approval["decision"] == "approve" and approval["reasons"] == []


def test_console_script_scores_standard_input():
    text = (EXAMPLES / "hmda_denial.json").read_text()
    result = run_script("score", "-", stdin=text)
    assert result.returncode == 0, result.stderr
    assert main_output_of(["score", str(EXAMPLES / "hmda_denial.json")]) == json.loads(result.stdout)


def main_output_of(argv: list[str]) -> dict:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return json.loads(buffer.getvalue())


def test_console_script_rejects_bad_input_with_a_line_per_field_and_no_traceback():
    result = run_script("score", "-", stdin=json.dumps(BAD))
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid application:"
    assert lines[1:] == [
        "  - debt_to_income must be between 0 and 3; got -1",
        "  - housing_expense_to_income must be a number between 0 and 3; got 'high'",
        "  - condominium is required (true or false); it is missing",
        lines[4],
    ] and lines[4].startswith("  - race is not a field of this application; expected only: debt_to_income")


@pytest.mark.parametrize("argv, message", [
    (["score", "no/such/file.json"], "application file not found: no/such/file.json"),
    (["score", "."], "application file expected, got a directory: ."),
    (["score", str(EXAMPLES / "hmda_denial.json"), "--dataset", "credit"], "seniority is required"),
    (["score", str(EXAMPLES / "hmda_denial.json"), "--dataset", "nope"], "no risk model in"),
    (["train-risk", "--spec", "missing.toml"], "dataset spec 'missing.toml' not found"),
    (["train-risk", "--dataset", "nope"], "dataset spec 'nope' not found; expected one of: credit, hmda"),
])
def test_errors_exit_2_with_a_clear_message(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == "" and "Traceback" not in captured.err


def test_invalid_json_on_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("{oops"))
    assert main(["score", "-"]) == 2
    assert "application is not valid JSON" in capsys.readouterr().err


def test_any_lendsafe_error_is_exit_2_and_usage_errors_are_argparse_exits(capsys, monkeypatch):
    def failing(args):
        raise ArtifactNotFoundError("no adapter in /x; run `lendsafe finetune`")

    parser = build_parser()
    score = next(a for a in parser._actions if a.dest == "command").choices["score"]
    score.set_defaults(func=failing)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert main(["score", "x.json"]) == 2
    assert capsys.readouterr().err == "error: no adapter in /x; run `lendsafe finetune`\n"
    with pytest.raises(SystemExit) as exited:
        main(["score", "x.json", "--reference", "median"])
    assert exited.value.code == 2 and "invalid choice: 'median'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- notices: one set of flags

def _options(command: str) -> dict[str, tuple]:
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest: (a.default, tuple(a.choices or ())) for a in sub._actions if a.dest in ("dataset", "reference",
                                                                                              "writer")}


@pytest.mark.parametrize("command", ["notice", "notices"])
def test_notice_commands_take_the_scoring_flags_of_explain(command):
    assert _options(command) == _options("explain") and set(_options(command)) == {"dataset", "reference", "writer"}


def test_notice_rejects_bad_lender_settings_with_exit_2(tmp_path, capsys):
    settings = tmp_path / "lender.toml"
    settings.write_text('creditor_name = "Bank"\nagency = "fed"\n')
    out = tmp_path / "n.pdf"
    assert main(["notice", str(EXAMPLES / "credit_denial.json"), "--dataset", "credit", "--out", str(out),
                 "--notice-settings", str(settings)]) == 2
    assert "agency must be one of" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ lendsafe verify

def _verify(tmp_path, capsys, *args):
    code = main(["verify", str(EXAMPLES / "hmda_denial.json"), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_verify_passes_the_composers_text_and_fails_a_wrong_meaning(tmp_path, capsys):
    from lendsafe.explain.composer import compose
    from lendsafe.decide.scoring import Scorer

    decision = Scorer.load("hmda").score(json.loads((EXAMPLES / "hmda_denial.json").read_text()))
    good = tmp_path / "good.txt"
    good.write_text(compose(decision))
    code, out, _ = _verify(tmp_path, capsys, "--text", str(good))
    assert code == 0 and json.loads(out)["passed"]
    lines = [{"id": "good", "text": compose(decision)},
             {"id": "bad", "text": compose(decision) + " Your income comes from self-employment."}]
    texts = tmp_path / "texts.jsonl"
    texts.write_text("\n".join(json.dumps(line) for line in lines))
    code, out, _ = _verify(tmp_path, capsys, "--texts", str(texts))
    reports = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [(r["id"], r["passed"]) for r in reports] == [("good", True), ("bad", False)]
    assert not reports[1]["checks"]["meaning_matches_value"]["passed"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "--texts line 1: expected a JSON object"),
    ('{"id": 1}', "--texts line 1: expected"),
    ("", "holds no texts"),
])
def test_verify_refuses_bad_texts_files_with_exit_2(tmp_path, capsys, content, message):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(content)
    code, _, err = _verify(tmp_path, capsys, "--texts", str(texts))
    assert code == 2 and message in err


def test_verify_refuses_a_missing_text_file_and_a_bad_application(tmp_path, capsys):
    code, _, err = _verify(tmp_path, capsys, "--text", str(tmp_path / "none.txt"))
    assert code == 2 and "--text: expected a readable text file" in err
    bad = tmp_path / "app.json"
    bad.write_text('{"debt_to_income": "high"}')
    (tmp_path / "t.txt").write_text("We cannot approve your mortgage application.")
    assert main(["verify", str(bad), "--text", str(tmp_path / "t.txt")]) == 2
    assert "debt_to_income" in capsys.readouterr().err
