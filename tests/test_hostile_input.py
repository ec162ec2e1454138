"""Hostile application files through `lendsafe score`: a clear, field-named error and exit 2, never a
traceback; terminal control characters never echoed raw. A hypothesis corpus of 300+ generated files
drives ``lendsafe.cli.main`` in-process and reports how many ended in 0 and in 2."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendsafe.decide.application import MAX_APPLICATION_BYTES, MAX_INTEGER_DIGITS, MAX_JSON_DEPTH, read_application_json
from lendsafe.cli import main as cli_main
from lendsafe.errors import InvalidApplicationError
from lendsafe.redaction import printable, redact_url

APPLICATION = json.loads((Path(__file__).resolve().parents[1] / "data/examples/hmda_denial.json").read_text())
ESC = "\x1b"
OUTCOMES: Counter = Counter()


def run_score(path: Path | str) -> tuple[int, str, str]:
    """``lendsafe score <path>`` in-process: (exit code, stdout, stderr); an escaping exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(["score", str(path)])
        except SystemExit as exc:                   # argparse errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_refused(path, *words: str) -> str:
    code, out, err = run_score(path)
    assert code == 2 and out == "" and "Traceback" not in err, (code, err)
    for word in words:
        assert word in err, err
    return err


# ----------------------------------------------------------------------------- the issue's cases, one by one

HOSTILE_FILES = {  # name -> (bytes, words the error must contain)
    "100,000-deep nesting": (b"[" * 100_000 + b"]" * 100_000, [f"deeper than {MAX_JSON_DEPTH} levels"]),
    "100,000-deep object nesting": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, ["deeper than"]),
    "5,000-digit integer": (json.dumps({**APPLICATION, "consumer_credit_history": 1}).replace(
        '"consumer_credit_history": 1', '"consumer_credit_history": ' + "9" * 5000).encode(),
        ["integer of 5,000 digits", f"at most {MAX_INTEGER_DIGITS}"]),
    "non-UTF-8 bytes": (b'{"debt_to_income": "\xff\xfe"}', ["not UTF-8 text", "0xff"]),
    "duplicate keys": (b'{"debt_to_income": 0.1, "debt_to_income": 0.9}', ["'debt_to_income' more than once"]),
    "duplicate nested keys": (json.dumps(APPLICATION)[:-1].encode() + b', "applicant": {"name": "a", "name": "b"}}',
                              ["more than once"]),
    "a JSON list": (b"[1, 2, 3]", ["must be a JSON object; got list"]),
    "a JSON string": (b'"application"', ["must be a JSON object; got str"]),
    "null": (b"null", ["must be a JSON object; got NoneType"]),
    "NaN": (b'{"debt_to_income": NaN}', ["field 'debt_to_income' is NaN"]),
    "empty file": (b"", ["not valid JSON"]),
    "truncated JSON": (b'{"debt_to_income": 0.', ["not valid JSON"]),
    "over the size limit": (b'{"a": "' + b"x" * MAX_APPLICATION_BYTES + b'"}', ["larger than 1,000,000 bytes"]),
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_each_hostile_file_is_refused_with_a_clear_message(tmp_path, name):
    content, words = HOSTILE_FILES[name]
    path = tmp_path / "application.json"
    path.write_bytes(content)
    assert_refused(path, *words)


def test_a_directory_a_missing_path_and_a_device_are_refused(tmp_path):
    assert_refused(tmp_path, "expected, got a directory")
    assert_refused(tmp_path / "nope.json", "not found")
    assert_refused("/dev/zero", "device, pipe or socket")


def test_control_characters_in_keys_and_values_are_never_echoed_raw(tmp_path):
    path = tmp_path / "application.json"
    path.write_text(json.dumps({**APPLICATION, f"k{ESC}[31mred": 1, "debt_to_income": f"{ESC}]0;title\a"}))
    err = assert_refused(path, "k\\x1b[31mred is not a field", "debt_to_income must be")
    assert ESC not in err and "\a" not in err
    named = tmp_path / f"evil{ESC}[2Jname.json"
    assert ESC not in assert_refused(named, "not found", "evil\\x1b[2Jname.json")


def test_the_limits_leave_real_applications_alone(tmp_path):
    path = tmp_path / "application.json"
    path.write_text(json.dumps(APPLICATION, indent=2))
    assert read_application_json(path)["debt_to_income"] == APPLICATION["debt_to_income"]
    code, out, err = run_score(path)
    assert code == 0 and json.loads(out)["decision"] == "deny" and err == ""


def test_standard_input_is_bounded_and_checked_too(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"a": 1, "a": 2}'))
    with pytest.raises(InvalidApplicationError, match="more than once"):
        read_application_json("-")


# ----------------------------------------------------------------------------- output helpers

@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://lendsafe:s3cr3t@db.bank:5432/audit", "postgresql+psycopg://lendsafe:***@db.bank:5432/audit"),
    ("postgresql://u:p%40ss@h/db?sslmode=require&password=x", "postgresql://u:***@h/db?sslmode=require&password=***"),
    ("sqlite:////var/lib/lendsafe/audit.db", "sqlite:////var/lib/lendsafe/audit.db"),
    ("postgresql://reader@h/db", "postgresql://reader@h/db"),
])
def test_redact_url_hides_passwords_and_secret_parameters(url, shown):
    assert redact_url(url) == shown


def test_printable_escapes_controls_and_bidi_overrides_but_keeps_text():
    assert printable(f"a{ESC}[31mb\u202ec\n") == "a\\x1b[31mb\\u202ec\\x0a"
    assert printable("line\nnext\tTab", keep_newlines=True) == "line\nnext\tTab"
    assert printable("Zoë 李") == "Zoë 李"


# ----------------------------------------------------------------------------- generated corpus

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=40), st.sampled_from(["1e999", "-0", "0x10", "", " ", ESC + "[31m"]))
FIELDS = list(APPLICATION) + ["loan_amount", "product", "unknown_field", f"x{ESC}[0m", "", "__proto__"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def hostile_files(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "nesting", "number", "duplicates", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        value = draw(st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                                  | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12))
        return json.dumps(value).encode()
    if kind == "mutated":
        field, value = draw(st.sampled_from(FIELDS)), draw(JSON_SCALARS)
        return json.dumps({**APPLICATION, field: value}).encode()
    if kind == "nesting":
        return _nested(draw(st.integers(MAX_JSON_DEPTH - 2, 5000))).encode()
    if kind == "number":
        digits = "9" * draw(st.integers(1, 6000))
        return json.dumps(APPLICATION).replace('"consumer_credit_history": 5',
                                               f'"consumer_credit_history": {digits}').encode()
    if kind == "duplicates":
        field = draw(st.sampled_from(list(APPLICATION)))
        return json.dumps(APPLICATION)[:-1].encode() + f', "{field}": {json.dumps(APPLICATION[field])}}}'.encode()
    return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(content=hostile_files())
def test_generated_hostile_files_exit_0_or_2_and_never_print_a_traceback(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "application.json"
    path.write_bytes(content)
    code, out, err = run_score(path)
    OUTCOMES[code] += 1
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and ESC not in err
    assert (code == 0) == (err == "") and (code != 0 or json.loads(out)["decision"] in ("approve", "deny"))


def test_generated_corpus_report():
    """Runs after the corpus (file order): at least 300 files, every one ended in 0 or 2."""
    total = sum(OUTCOMES.values())
    if not total:
        pytest.skip("reports on the generated corpus test; run the two together")
    print(f"\nhostile score corpus: {total} files, exit 0: {OUTCOMES[0]}, exit 2: {OUTCOMES[2]}, "
          f"other: {total - OUTCOMES[0] - OUTCOMES[2]}")
    assert total >= 300 and set(OUTCOMES) <= {0, 2}


# ----------------------------------------------------------------------------- notice, notices, notice settings
# The same kind of corpus through `lendsafe notice`, `lendsafe notices` and the notice-settings loader, with
# the deterministic writer (one real pipeline, built once), at least 200 generated inputs each.

import csv as _csv  # noqa: E402
import shutil  # noqa: E402
from types import SimpleNamespace  # noqa: E402

ENTRY_OUTCOMES: dict[str, Counter] = {"notice": Counter(), "notices": Counter(), "settings": Counter()}
NOTICE_FIELDS = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
                 "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
                 "condominium")
HOSTILE_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", f"{ESC}[2J", "\u00ad",
                     "\U0001F600", "\u202eevil", "0001-01-01", "9999-12-31", "1899-12-31", "2026-02-30", "NaN",
                     "http://evil.example", "[a](http://evil.example)", "<b>x</b>", "\x00", "1e999", ""]))
NOTICE_ARGS = ["--writer", "template", "--notice-date", "2026-03-02"]
FUZZ_SETTINGS = settings(max_examples=200, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def template_pipeline():
    """`lendsafe notice(s)` with one real template-writer pipeline instead of one per call."""
    import lendsafe.commands.notices as commands

    pipeline = commands._pipeline(SimpleNamespace(no_llm=False, writer="template", dataset="hmda",
                                                  reference="population"))
    patch = pytest.MonkeyPatch()
    patch.setattr(commands, "_pipeline", lambda args: pipeline)
    yield pipeline
    patch.undo()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_clean(entry: str, code: int, out: str, err: str) -> None:
    ENTRY_OUTCOMES[entry][code] += 1
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and ESC not in err and ESC not in out, err


@st.composite
def hostile_applications(draw) -> bytes:
    kind = draw(st.sampled_from(["file", "applicant", "date", "fields"]))
    if kind == "file":
        return draw(hostile_files())
    if kind == "applicant":
        name, address = draw(HOSTILE_TEXT), draw(HOSTILE_TEXT)
        return json.dumps({**APPLICATION, "applicant": {"name": name, "address": address}}).encode()
    if kind == "date":
        return json.dumps({**APPLICATION, "application_date": draw(HOSTILE_TEXT)}).encode()
    changes = draw(st.dictionaries(st.sampled_from(FIELDS), JSON_SCALARS | HOSTILE_TEXT, max_size=3))
    return json.dumps({**APPLICATION, **changes}).encode()


@FUZZ_SETTINGS
@given(content=hostile_applications())
def test_generated_applications_through_notice_never_print_a_traceback(template_pipeline, tmp_path_factory,
                                                                        content):
    folder = tmp_path_factory.mktemp("notice-fuzz")
    path = folder / "application.json"
    path.write_bytes(content)
    code, out, err = run_cli(["notice", str(path), "--out", str(folder / "n.pdf"), *NOTICE_ARGS])
    assert_clean("notice", code, out, err)
    assert (code == 0) == (folder / "n.pdf").exists() or json.loads(out)["notice"] is None


@st.composite
def hostile_csvs(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "cells", "header", "shape"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    header = list(NOTICE_FIELDS) + ["applicant_name", "application_date", "application_id"]
    if kind == "header":
        header = draw(st.lists(st.sampled_from(header) | HOSTILE_TEXT, min_size=1, max_size=12))
    base = {"debt_to_income": "0.9", "housing_expense_to_income": "0.4", "loan_to_value": "0.9",
            "consumer_credit_history": "5", "mortgage_credit_history": "2", "public_bad_credit_record": "yes",
            "mortgage_insurance_denied": "no", "self_employed": "no", "condominium": "no"}
    rows = []
    for _ in range(draw(st.integers(0, 3))):
        row = [base.get(name, "") for name in header]
        for index in draw(st.lists(st.integers(0, len(header) - 1), max_size=3)):
            row[index] = draw(HOSTILE_TEXT)
        rows.append(row + (draw(st.lists(HOSTILE_TEXT, max_size=2)) if kind == "shape" else []))
    buffer = io.StringIO()
    writer = _csv.writer(buffer)
    writer.writerows([header, *rows])
    return buffer.getvalue().encode("utf-8", "surrogatepass")


@FUZZ_SETTINGS
@given(content=hostile_csvs())
def test_generated_csv_files_through_notices_never_print_a_traceback(template_pipeline, tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("notices-fuzz")
    path = folder / "applications.csv"
    path.write_bytes(content)
    code, out, err = run_cli(["notices", str(path), "--out", str(folder / "out"), *NOTICE_ARGS])
    assert_clean("notices", code, out, err)
    for name in ("manifest.csv", "errors.csv"):
        if (folder / "out" / name).exists():
            with open(folder / "out" / name, newline="", encoding="utf-8") as handle:
                cells = [cell for row in _csv.reader(handle) for cell in row]
            assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    shutil.rmtree(folder, ignore_errors=True)


SETTING_NAMES = ["creditor_name", "creditor_address", "creditor_phone", "creditor_type", "agency", "reasons_mode",
                 "consumer_report_used", "cra_phone", "cra_nationwide", "credit_score", "score_range", "score_date",
                 "score_source", "score_factors", "incomplete_days", "specimen", "template_path",
                 "max_explanation_chars", "unknown_setting", f"x{ESC}[0m"]
SETTING_VALUES = st.one_of(JSON_SCALARS, HOSTILE_TEXT, st.lists(JSON_SCALARS, max_size=5),
                           st.sampled_from(["/etc/passwd", "/dev/zero", ".", "no", "yes", "maybe", [300, 850], 700.5,
                                            "lendsafe/templates/notice_en.toml", "occ", "1-888-397-3742"]))


@st.composite
def hostile_settings(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".toml", ".json"]))
    kind = draw(st.sampled_from(["bytes", "table", "text"]))
    if kind == "bytes":
        return suffix, draw(st.binary(max_size=300))
    if kind == "text":
        return suffix, draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    table = draw(st.dictionaries(st.sampled_from(SETTING_NAMES), SETTING_VALUES, max_size=5))
    if suffix == ".json":
        return suffix, json.dumps(table).encode()
    lines = [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items() if v is not None]
    return suffix, "\n".join(lines).encode("utf-8", "surrogatepass")


@FUZZ_SETTINGS
@given(settings_file=hostile_settings())
def test_generated_notice_settings_never_print_a_traceback(template_pipeline, tmp_path_factory, settings_file):
    suffix, content = settings_file
    folder = tmp_path_factory.mktemp("settings-fuzz")
    path, app = folder / f"lender{suffix}", folder / "application.json"
    path.write_bytes(content)
    app.write_text(json.dumps(APPLICATION))
    code, out, err = run_cli(["notice", str(app), "--out", str(folder / "n.pdf"), "--notice-settings", str(path),
                              *NOTICE_ARGS])
    assert_clean("settings", code, out, err)
    assert code != 2 or err.count("error: ") == 1, err


@pytest.mark.parametrize("content, words", [
    (b'consumer_report_used = "no"', None),
    (b"score_factors = 'abc'", "score_factors must be a list of texts; got 'abc'"),
    (b'credit_score = 700.5\nscore_date = "2026-01-01"\nscore_source = "X"\nscore_factors = ["a"]',
     "credit_score must be a whole number"),
    (b'template_path = "/etc/passwd"', "template_path must name a notice wording TOML file"),
    (b"creditor_name = = 1", "is not valid TOML"),
    (b'creditor_name = "\xff"', "is not UTF-8 text"),
    (b"agency = 5", "agency must be a text or a list of texts"),
])
def test_the_issues_notice_settings_cases(content, words, tmp_path, template_pipeline):
    path, app = tmp_path / "lender.toml", tmp_path / "application.json"
    path.write_bytes(content)
    app.write_text(json.dumps(APPLICATION))
    code, out, err = run_cli(["notice", str(app), "--out", str(tmp_path / "n.pdf"), "--notice-settings", str(path),
                              *NOTICE_ARGS])
    assert "Traceback" not in err
    if words is None:
        from lendsafe.notice.settings import NoticeSettings

        assert code == 0 and NoticeSettings.from_file(path).consumer_report_used is False
    else:
        assert code == 2 and words in err and not (tmp_path / "n.pdf").exists(), err


def test_an_unknown_placeholder_in_the_wording_is_refused_with_its_key(tmp_path, template_pipeline):
    from lendsafe.notice.wording import DEFAULT_TEMPLATE

    wording = tmp_path / "wording.toml"
    wording.write_text(DEFAULT_TEMPLATE.read_text().replace("Page {page}", "Page {page} {secret}"))
    path, app = tmp_path / "lender.toml", tmp_path / "application.json"
    path.write_text(f"template_path = {json.dumps(str(wording))}\n")
    app.write_text(json.dumps(APPLICATION))
    code, _, err = run_cli(["notice", str(app), "--out", str(tmp_path / "n.pdf"), "--notice-settings", str(path),
                            *NOTICE_ARGS])
    assert code == 2 and "[text] footer_page uses unknown placeholder(s) ['secret']" in err


@pytest.mark.parametrize("change, words", [
    ({"applicant": {"name": "Jordan \U0001F600", "address": "12 Elm Street"}}, "fails its completeness check"),
    ({"application_date": "0001-01-01"}, "application_date must be a date from 1900-01-01"),
    ({"application_date": "9999-12-31"}, "application_date must be a date from 1900-01-01"),
])
def test_a_notice_no_one_may_send_exits_2_and_records_only_a_refusal(change, words, tmp_path, template_pipeline):
    from lendsafe.audit.store import AuditStore

    app = tmp_path / "application.json"
    app.write_text(json.dumps({**APPLICATION, **change}))
    with AuditStore() as store:
        before = store.head()[0]
        code, _, err = run_cli(["notice", str(app), "--out", str(tmp_path / "n.pdf"), *NOTICE_ARGS])
        assert code == 2 and words in err and not (tmp_path / "n.pdf").exists(), err
        added = store.list(after_id=before)
        refused = words == "fails its completeness check"
        assert [(r.kind, r.notice_sha256) for r in added] == ([("refusal", None)] if refused else [])
        if refused:
            assert added[0].content["refused"]["reason"] == "completeness check"


def test_a_soft_hyphen_in_the_name_is_cleaned_and_the_notice_issued(tmp_path, template_pipeline):
    app = tmp_path / "application.json"
    app.write_text(json.dumps({**APPLICATION, "applicant": {"name": "Jor\u00addan Avery", "address": "1 Elm St"}}))
    code, out, err = run_cli(["notice", str(app), "--out", str(tmp_path / "n.pdf"), *NOTICE_ARGS])
    assert code == 0 and json.loads(out)["check"]["passed"], err


@pytest.mark.parametrize("content", [b"{bad", b"[1, 2]", b'{"decision": "deny"}', b'{"kind": "incomplete"}',
                                     b"[" * 50_000, b"\xff\xfe"])
def test_check_notice_refuses_malformed_decision_json(content, tmp_path):
    pdf, decision = tmp_path / "n.pdf", tmp_path / "d.json"
    pdf.write_bytes(b"%PDF-1.4\n")
    decision.write_bytes(content)
    code, _, err = run_cli(["check-notice", str(pdf), "--decision", str(decision)])
    assert code in (1, 2) and "Traceback" not in err, err


def test_notice_entry_points_report():
    """Runs after the three corpora (file order): at least 200 inputs each, every one ended in 0, 1 or 2."""
    if not all(sum(c.values()) for c in ENTRY_OUTCOMES.values()):
        pytest.skip("reports on the generated notice corpora; run them together")
    for entry, outcomes in ENTRY_OUTCOMES.items():
        print(f"\nhostile {entry} corpus: {sum(outcomes.values())} inputs, " +
              ", ".join(f"exit {code}: {n}" for code, n in sorted(outcomes.items())))
        assert sum(outcomes.values()) >= 200 and set(outcomes) <= {0, 1, 2}


# ----------------------------------------------------------------------------- every other entry point
# Generated inputs, each wrong by construction in one named field, through `explain`, `verify`,
# `check-notice`, the `audit` actions and the two readers behind the dashboard's uploads (the batch CSV
# reader and the notice-settings loader). Each must end in exit 2 (or a LendSafeError) whose message names
# the field; no traceback, no raw terminal escape. The report below prints how many inputs each took.

from lendsafe.decide.specs import load_spec  # noqa: E402

REFUSED: dict[str, Counter] = {name: Counter() for name in (
    "explain", "verify", "check-notice", "audit list", "audit show", "audit verify", "audit retention",
    "audit export", "upload: batch CSV", "upload: notice settings")}
SPEC = load_spec("hmda")
NUMERIC = [f for f in SPEC.input_fields if f.type in ("float", "int")]
BOOLEAN = [f for f in SPEC.input_fields if f.type == "bool"]
REQUIRED = [f for f in SPEC.input_fields if not f.optional]
NAMES = st.text(min_size=1, max_size=24)


def expect_refused(entry: str, argv: list[str], *fields: str) -> str:
    """Run `argv`; it must exit 2, without a traceback or a raw escape, naming every one of `fields`."""
    code, out, err = run_cli(argv)
    REFUSED[entry][code] += 1
    assert code == 2 and "Traceback" not in err and ESC not in err + out, (argv, code, err)
    assert all(field in err for field in fields), (fields, err)
    return err


@st.composite
def wrong_applications(draw) -> tuple[bytes, str]:
    """(application JSON, the field its error must name): one field wrong, the rest as in the example."""
    kind = draw(st.sampled_from(["unknown", "text", "range", "container", "bool", "missing", "file"]))
    app = dict(APPLICATION)
    if kind == "unknown":
        name = "x_" + draw(NAMES)
        value = draw(JSON_SCALARS.filter(lambda v: not (isinstance(v, float) and math.isinf(v))))
        return json.dumps({**app, name: value}).encode(), printable(name)
    if kind == "file":
        return b"\xff" + draw(st.binary(max_size=60)), "application file"
    feature = draw(st.sampled_from({"text": NUMERIC, "range": [f for f in NUMERIC if f.max is not None],
                                    "container": SPEC.input_fields, "bool": BOOLEAN, "missing": REQUIRED}[kind]))
    if kind == "missing":
        del app[feature.name]
        return json.dumps(app).encode(), f"{feature.name} is required"
    value = {"text": lambda: "z" + draw(HOSTILE_TEXT),
             "range": lambda: feature.max + draw(st.floats(1e-3, 1e6)),
             "container": lambda: draw(st.lists(JSON_SCALARS, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                           JSON_SCALARS, max_size=2)),
             "bool": lambda: draw(st.integers(2, 10**6) | st.just("z") | HOSTILE_TEXT.filter(
                 lambda t: t.strip().lower() not in {"yes", "no", "true", "false", "1", "0", "y", "n", "t", "f"}))
             }[kind]()
    return json.dumps({**app, feature.name: value}).encode(), feature.name


@pytest.fixture(scope="module")
def one_pipeline():
    """`explain` and `verify` build a Pipeline per call; here they share one deterministic-writer pipeline."""
    import lendsafe.explain.pipeline as pipeline_module
    from lendsafe.config import Settings

    patch = pytest.MonkeyPatch()
    patch.setenv("LENDSAFE_USE_LLM", "0")
    built = pipeline_module.Pipeline(Settings(dataset="hmda", use_llm=False), reference="population",
                                     writer="template")
    patch.setattr(pipeline_module, "Pipeline", lambda *args, **kwargs: built)
    yield built
    patch.undo()


@FUZZ_SETTINGS
@given(case=wrong_applications())
def test_generated_applications_through_explain_exit_2_naming_the_field(one_pipeline, tmp_path_factory, case):
    content, field = case
    path = tmp_path_factory.mktemp("explain-fuzz") / "application.json"
    path.write_bytes(content)
    expect_refused("explain", ["explain", str(path), "--writer", "template"], field)


@st.composite
def wrong_texts(draw) -> tuple[str, bytes, str]:
    """(option, file bytes, what the error names): a --text or --texts file that cannot be read as texts."""
    kind = draw(st.sampled_from(["bytes", "long", "line", "shape", "empty"]))
    if kind == "bytes":
        return "--text", b"\xff" + draw(st.binary(max_size=60)), "--text"
    if kind == "long":
        return "--text", (draw(HOSTILE_TEXT) + "x" * 20_001).encode("utf-8", "surrogatepass"), "--text"
    if kind == "empty":
        return "--texts", draw(st.sampled_from([b"", b"\n\n", b"   \n"])), "--texts"
    good = json.dumps({"id": "ok", "text": "Your application was denied."})
    bad = (draw(HOSTILE_TEXT).replace("\n", " ") + "{" if kind == "line"
           else json.dumps(draw(st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=2),
                                          st.dictionaries(st.sampled_from(["id", "txt"]), JSON_SCALARS, max_size=2)))))
    lines = [good] * draw(st.integers(0, 2))
    return "--texts", "\n".join([*lines, bad]).encode("utf-8", "surrogatepass"), f"--texts line {len(lines) + 1}"


@FUZZ_SETTINGS
@given(case=st.one_of(wrong_texts(), wrong_applications().map(lambda c: ("application", *c))))
def test_generated_inputs_through_verify_exit_2_naming_the_field(one_pipeline, tmp_path_factory, case):
    folder = tmp_path_factory.mktemp("verify-fuzz")
    app, texts = folder / "application.json", folder / "texts"
    if case[0] == "application":
        _, content, field = case
        app.write_bytes(content)
        texts.write_text("Your application was denied.")
        argv = ["verify", str(app), "--text", str(texts)]
    else:
        option, content, field = case
        app.write_text(json.dumps(APPLICATION))
        texts.write_bytes(content)
        argv = ["verify", str(app), option, str(texts)]
    expect_refused("verify", argv, field)


@pytest.fixture(scope="module")
def issued_notice(tmp_path_factory, one_pipeline):
    """One real notice PDF and its decision JSON (what `check-notice` is given)."""
    folder = tmp_path_factory.mktemp("issued")
    app = folder / "application.json"
    app.write_text(json.dumps(APPLICATION))
    code, _, err = run_cli(["notice", str(app), "--out", str(folder / "n.pdf"), "--decision-out",
                            str(folder / "d.json"), *NOTICE_ARGS])
    assert code == 0, err
    return folder / "n.pdf", json.loads((folder / "d.json").read_text())


DECISION_TYPES = {"risk": 0.5, "threshold": 0.5, "reasons": [], "application": {}, "decision": "deny"}


@st.composite
def wrong_check_inputs(draw, decision: dict) -> tuple[str, bytes, str]:
    """(which file, its bytes, what the error names) for check-notice: the decision JSON, the PDF or settings."""
    kind = draw(st.sampled_from(["decision bytes", "decision shape", "decision types", "pdf", "settings"]))
    if kind == "decision bytes":
        return "decision", draw(st.binary(max_size=80).filter(lambda b: not b.strip().startswith((b"{", b"[")))
                                | st.just(b"[" * 60_000)), "--decision"
    if kind == "decision shape":
        return "decision", json.dumps(draw(st.one_of(st.lists(JSON_SCALARS, max_size=3), JSON_SCALARS))).encode(), \
            "--decision"
    if kind == "decision types":
        name = draw(st.sampled_from(sorted(DECISION_TYPES)))
        wrong = draw(st.sampled_from(["z" + "x" * 3, ["x"], {"x": ["y"]}, True]).filter(
            lambda v: type(v) is not type(DECISION_TYPES[name])))
        return "decision", json.dumps({**decision, name: wrong}).encode(), "--decision"
    if kind == "pdf":
        return "pdf", draw(st.binary(max_size=200).filter(lambda b: b"%PDF" not in b)), "PDF"
    name = draw(st.sampled_from(SETTING_NAMES[:16]))
    return "settings", f"{name} = {{ nested = [1, {{ deeper = true }}] }}".encode(), printable(name)


@FUZZ_SETTINGS
@given(data=st.data())
def test_generated_inputs_through_check_notice_exit_2_naming_the_field(issued_notice, tmp_path_factory, data):
    pdf, decision = issued_notice
    which, content, field = data.draw(wrong_check_inputs(decision))
    folder = tmp_path_factory.mktemp("check-fuzz")
    files = {"pdf": pdf.read_bytes(), "decision": json.dumps(decision).encode(), "settings": b""}
    files[which] = content
    paths = {name: folder / f"{name}.{'toml' if name == 'settings' else name}" for name in files}
    for name, path in paths.items():
        path.write_bytes(files[name])
    argv = ["check-notice", str(paths["pdf"]), "--decision", str(paths["decision"])]
    expect_refused("check-notice", argv + (["--notice-settings", str(paths["settings"])]
                                           if which == "settings" else []), field)


@pytest.fixture(scope="module")
def audit_store_url(tmp_path_factory, issued_notice):
    """A store of its own holding three records (the `audit` actions are given its URL with --db)."""
    from lendsafe.audit.store import AuditStore
    from lendsafe.decide.decision import Decision

    url = f"sqlite:///{tmp_path_factory.mktemp('audit-fuzz') / 'audit.db'}"
    with AuditStore(url) as store:
        store.record_many([(Decision.from_dict(issued_notice[1]), None, None)] * 3, actor="fuzz")
    return url


def _not_iso(text: str) -> bool:
    from datetime import datetime as _dt

    try:
        _dt.fromisoformat(text.strip())
    except ValueError:
        return True
    return False


NOT_A_NUMBER = HOSTILE_TEXT.filter(lambda t: not t.strip().lstrip("+-").isdigit())
AUDIT_LIST_CASES = st.one_of(
    st.tuples(st.sampled_from(["--since", "--until"]), HOSTILE_TEXT.filter(_not_iso)),
    st.tuples(st.just("--limit"), NOT_A_NUMBER | st.integers(-10**6, 0).map(str) | st.just(str(10**7))),
    st.tuples(st.just("--decision"), NAMES.filter(lambda t: t not in ("approve", "deny", "incomplete", "refusal",
                                                                      "purge"))),
    st.tuples(st.just("--reason"), NAMES.filter(lambda t: not re.fullmatch("[A-Z0-9_]{1,64}", t))),
    st.tuples(st.sampled_from(["--dataset", "--writer"]), NAMES.map(lambda t: t + "/")),
    st.tuples(st.just("--actor"), st.sampled_from([ESC + "[2J", "a\nb", "x" * 129, "\x00"])),
)


@FUZZ_SETTINGS
@given(case=AUDIT_LIST_CASES)
def test_generated_audit_list_options_exit_2_naming_the_option(audit_store_url, case):
    option, value = case
    expect_refused("audit list", ["audit", "--db", audit_store_url, "list", f"{option}={value}"], f"argument {option}")


IDS = st.one_of(NOT_A_NUMBER.map(lambda t: (t, "argument id")), st.integers(-10**6, 0).map(lambda n: (str(n), "argument id")),
                st.integers(4, 2**62).map(lambda n: (str(n), f"no audit record with id {n}")))


@FUZZ_SETTINGS
@given(case=IDS)
def test_generated_audit_show_ids_exit_2_naming_the_id(audit_store_url, case):
    value, words = case
    expect_refused("audit show", ["audit", "--db", audit_store_url, "show", f"--", value], words)


@FUZZ_SETTINGS
@given(url=st.one_of(HOSTILE_TEXT.filter(lambda t: "://" not in t), NAMES.map(lambda t: f"mysql://{t}"),
                     NAMES.map(lambda t: f"sqlite:////proc/{t}/audit.db"), st.just("sqlite:///\x00x")))
def test_generated_audit_store_urls_through_verify_exit_2_naming_the_store(url):
    expect_refused("audit verify", ["audit", f"--db={url}", "verify"], "audit store")


@FUZZ_SETTINGS
@given(case=st.one_of(
    st.tuples(NOT_A_NUMBER | st.integers(-10**6, 0).map(str) | st.integers(1201, 10**9).map(str),
              st.just("consumer"), st.just("argument --months")),
    st.tuples(st.integers(1, 24).map(str), st.just("consumer"), st.just("at least 25 months")),
    st.tuples(st.integers(1, 11).map(str), st.just("business"), st.just("at least 12 months"))))
def test_generated_retention_periods_exit_2_naming_the_months(audit_store_url, case):
    months, credit, words = case
    expect_refused("audit retention", ["audit", "--db", audit_store_url, "retention", f"--months={months}",
                                       "--credit", credit], words)


@FUZZ_SETTINGS
@given(case=st.one_of(IDS.map(lambda c: ("folder", *c)), st.just(("file", "1", "argument --out"))))
def test_generated_audit_export_arguments_exit_2_naming_the_argument(audit_store_url, tmp_path_factory, case):
    kind, value, words = case
    folder = tmp_path_factory.mktemp("export-fuzz")
    out = folder / "pack"
    if kind == "file":
        out.write_bytes(b"not a folder")
    expect_refused("audit export", ["audit", "--db", audit_store_url, "export", "--out", str(out), "--", value],
                   words)


def expect_library_refusal(entry: str, call, *fields: str) -> str:
    """`call()` must raise a LendSafeError naming every one of `fields` (no other exception, no raw escape)."""
    from lendsafe.errors import LendSafeError

    with pytest.raises(LendSafeError) as raised:
        call()
    REFUSED[entry][2] += 1
    text = str(raised.value) + " ".join(getattr(raised.value, "problems", None) or [])
    assert ESC not in text and all(field in text for field in fields), (fields, text)
    return text


CSV_HEADER = list(NOTICE_FIELDS) + ["applicant_name", "application_id"]
CSV_ROW = ["0.9", "0.4", "0.9", "5", "2", "yes", "no", "no", "no", "Ann Lee", "A-1"]


@st.composite
def wrong_batch_csvs(draw) -> tuple[bytes, str, bool]:
    """(CSV bytes, the column its error names, whether the whole file is refused rather than one row)."""
    kind = draw(st.sampled_from(["cell", "range", "bytes", "long", "repeat"]))
    header, row = list(CSV_HEADER), list(CSV_ROW)
    if kind == "repeat":
        column = draw(st.sampled_from(CSV_HEADER))
        header.insert(draw(st.integers(0, len(header))), column)
        row.append("x")
        field, whole = f"column {column!r} appears 2 times", True
    else:
        feature = draw(st.sampled_from(NUMERIC if kind in ("cell", "range") else SPEC.input_fields))
        index, field, whole = header.index(feature.name), feature.name, False
        row[index] = {"cell": lambda: "z" + draw(HOSTILE_TEXT).replace("\x00", ""),
                      "range": lambda: str(feature.max + draw(st.integers(1, 10**6))),
                      "bytes": lambda: "\udcff" + draw(st.text(max_size=5)),
                      "long": lambda: "9" * draw(st.integers(10_001, 20_000))}[kind]()
    buffer = io.StringIO()
    _csv.writer(buffer).writerows([header, CSV_ROW, row])
    return buffer.getvalue().encode("utf-8", "surrogateescape"), field, whole


@FUZZ_SETTINGS
@given(case=wrong_batch_csvs())
def test_generated_batch_uploads_name_the_column_of_each_wrong_row(tmp_path_factory, case):
    """The dashboard's batch page hands the uploaded bytes to run_batch, which reads them with read_csv."""
    from lendsafe.notice.incomplete import read_csv

    content, field, whole = case
    path = tmp_path_factory.mktemp("upload-csv") / "applications.csv"
    path.write_bytes(content)
    if whole:
        expect_library_refusal("upload: batch CSV", lambda: read_csv(path, "hmda"), field)
        return
    good, wrong = read_csv(path, "hmda")
    REFUSED["upload: batch CSV"][2] += 1
    problems = " ".join(wrong.error.problems) if wrong.error else ""
    assert good.error is None and wrong.triage is None and field in problems and ESC not in problems, problems


@st.composite
def wrong_settings_uploads(draw) -> tuple[str, bytes, str]:
    """(file name, bytes, what the error names) of a lender settings upload that cannot be used."""
    kind = draw(st.sampled_from(["unknown", "table", "toml", "bytes", "json"]))
    name = draw(st.sampled_from(["lender.toml", "lender.json"])) if kind in ("unknown", "table") else \
        {"toml": "lender.toml", "bytes": "lender.toml", "json": "lender.json"}[kind]
    setting = draw(st.sampled_from(SETTING_NAMES[:18]))
    if kind == "unknown":
        unknown = "x_" + draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
        table, field = {unknown: draw(st.integers() | st.booleans() | st.text(alphabet="abc xyz", max_size=9))}, unknown
    elif kind == "table":
        table, field = {setting: {"nested": [1, {"deeper": True}]}}, setting
    if kind in ("unknown", "table"):
        if name.endswith(".json"):
            return name, json.dumps(table).encode(), field
        key, value = next(iter(table.items()))
        toml_value = json.dumps(value).replace('":', '" =').replace("{", "{ ").replace("}", " }")
        return name, f"{key} = {toml_value}".encode(), field
    if kind == "toml":
        return name, ("= = " + draw(HOSTILE_TEXT)).encode("utf-8", "surrogatepass"), "not valid TOML"
    if kind == "bytes":
        return name, b'creditor_name = "\xff' + draw(st.binary(max_size=20)) + b'"', "not UTF-8"
    return name, json.dumps(draw(st.lists(JSON_SCALARS, max_size=3) | JSON_SCALARS)).encode(), "notice settings"


@FUZZ_SETTINGS
@given(case=wrong_settings_uploads())
def test_generated_settings_uploads_name_the_setting(case):
    """The dashboard's settings uploader hands the file's name and bytes to NoticeSettings.from_bytes."""
    from lendsafe.notice.settings import NoticeSettings

    name, content, field = case
    expect_library_refusal("upload: notice settings", lambda: NoticeSettings.from_bytes(name, content), field)


def test_entry_point_refusals_report():
    """Runs after the corpora above (file order): each entry point took at least 200 generated wrong inputs,
    every one refused with exit 2 naming its field."""
    if not all(sum(c.values()) for c in REFUSED.values()):
        pytest.skip("reports on the generated entry-point corpora; run them together")
    for entry, outcomes in REFUSED.items():
        print(f"\nhostile {entry} corpus: {sum(outcomes.values())} inputs, "
              + ", ".join(f"exit {code}: {n}" for code, n in sorted(outcomes.items())))
    assert all(sum(c.values()) >= 200 and set(c) == {2} for c in REFUSED.values()), REFUSED
