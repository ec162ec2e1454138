"""The input boundary: every kind of bad input gets a message naming the field, what was expected and what
was got; optional fields never reach the model; CSV rows fail one by one; JSON files and stdin."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.decide.application import (OPTIONAL_FIELDS, parse_application, parse_application_text, read_application_json,
                                  read_applications_csv)
from lendsafe.decide.datasets import matrix_from_records
from lendsafe.decide.specs import load_spec
from lendsafe.errors import InvalidApplicationError
from lendsafe.decide.scoring import Scorer

APPLICATION = {
    "debt_to_income": 0.52, "housing_expense_to_income": 0.38, "loan_to_value": 0.97, "consumer_credit_history": 5,
    "mortgage_credit_history": 2, "public_bad_credit_record": True, "mortgage_insurance_denied": False,
    "self_employed": False, "condominium": False,
}
OPTIONAL = {"application_id": "A-1", "applicant": {"name": "Jordan Avery", "address": "12 Elm Street"},
            "application_date": "2026-11-02", "loan_amount": 245000, "product": "30-year fixed"}


def problems_of(data, dataset="hmda") -> list[str]:
    with pytest.raises(InvalidApplicationError) as caught:
        parse_application(data, dataset)
    return caught.value.problems


def test_a_valid_application_parses_with_every_optional_field():
    parsed = parse_application({**APPLICATION, **OPTIONAL})
    assert {k: parsed[k] for k in APPLICATION} == APPLICATION
    assert parsed["applicant"] == OPTIONAL["applicant"] and parsed["application_date"] == "2026-11-02"
    assert parsed["loan_amount"] == 245000.0 and parsed["product"] == "30-year fixed"
    json.dumps(parsed)


def test_optional_fields_may_be_left_out():
    parsed = parse_application(APPLICATION)
    assert all(parsed[name] is None for name in OPTIONAL_FIELDS)


def test_integers_are_accepted_for_ratios():
    assert parse_application({**APPLICATION, "loan_to_value": 1})["loan_to_value"] == 1.0


@pytest.mark.parametrize("change, message", [
    # unknown fields
    ({"race": "x"}, "race is not a field of this application; expected only: debt_to_income, "),
    ({"applicant": {"name": "A", "phone": "1"}}, "applicant.phone is not a field of this application; "
                                                 "expected only: name, address"),
    # wrong types
    ({"debt_to_income": "0.5"}, "debt_to_income must be a number between 0 and 3; got '0.5'"),
    ({"debt_to_income": True}, "debt_to_income must be a number between 0 and 3; got true"),
    ({"consumer_credit_history": 2.5}, "consumer_credit_history must be a whole number between 1 and 6; got 2.5"),
    ({"mortgage_credit_history": "2"}, "mortgage_credit_history must be a whole number between 1 and 4; got '2'"),
    ({"self_employed": 1}, "self_employed must be true or false; got 1"),
    ({"condominium": "yes"}, "condominium must be true or false; got 'yes'"),
    ({"loan_to_value": None}, "loan_to_value must be a number between 0 and 3; got null"),
    ({"loan_amount": "lots"}, "loan_amount must be a number between 0 and 1000000000; got 'lots'"),
    ({"application_date": "yesterday"}, "application_date must be a date (YYYY-MM-DD); got 'yesterday'"),
    ({"application_date": 5}, "application_date must be a date (YYYY-MM-DD); got 5"),
    ({"applicant": "Bob"}, "applicant must be an object with name and address; got 'Bob'"),
    ({"applicant": {"name": 5}}, "applicant.name must be text; got 5"),
    ({"product": 5}, "product must be text; got 5"),
    # out of range
    ({"debt_to_income": -1}, "debt_to_income must be between 0 and 3; got -1"),
    ({"housing_expense_to_income": 3.01}, "housing_expense_to_income must be between 0 and 3; got 3.01"),
    ({"consumer_credit_history": 7}, "consumer_credit_history must be between 1 and 6; got 7"),
    ({"mortgage_credit_history": 0}, "mortgage_credit_history must be between 1 and 4; got 0"),
    ({"loan_amount": -5}, "loan_amount must be between 0 and 1000000000; got -5"),
    ({"debt_to_income": math.nan}, "debt_to_income must be a finite number; got NaN"),
    ({"loan_to_value": math.inf}, "loan_to_value must be a finite number; got Infinity"),
])
def test_each_bad_value_gets_one_message_naming_field_expectation_and_value(change, message):
    problems = problems_of({**APPLICATION, **change})
    assert len(problems) == 1 and problems[0].startswith(message), problems


@pytest.mark.parametrize("field", list(APPLICATION))
def test_each_missing_field_is_named_with_what_it_expects(field):
    data = {k: v for k, v in APPLICATION.items() if k != field}
    [problem] = problems_of(data)
    assert problem.startswith(f"{field} is required (") and problem.endswith("); it is missing")
    expected = {"float": "a number between 0 and 3", "int": "a whole number between 1 and ",
                "bool": "true or false"}[load_spec("hmda").feature(field).type]
    assert expected in problem


def test_all_problems_are_reported_together():
    data = {**APPLICATION, "debt_to_income": 9, "self_employed": "no", "zip": "02169"}
    del data["condominium"]
    problems = problems_of(data)
    assert len(problems) == 4
    assert {p.split(" ")[0] for p in problems} == {"debt_to_income", "self_employed", "zip", "condominium"}


@pytest.mark.parametrize("data, shown", [([1, 2], "list"), ("text", "str"), (None, "NoneType")])
def test_an_application_must_be_an_object(data, shown):
    assert problems_of(data) == [f"application must be a JSON object; got {shown}"]


def test_credit_schema_categories_and_optional_model_inputs():
    credit = {"seniority": 1, "home": "rent", "loan_term_months": 60, "public_record": True, "expenses": 75,
              "income": None, "assets": 0, "debt": 0, "amount": 1400, "price": 1500}
    parsed = parse_application(credit, "credit")
    assert parsed["income"] is None and "loan_to_price" not in parsed
    [problem] = problems_of({**credit, "home": "boat"}, "credit")
    assert problem == "home must be one of owner, rent, parents, priv, other, ignore; got 'boat'"
    [problem] = problems_of({**credit, "assets": -1}, "credit")
    assert problem == "assets must be between 0 and 1000000; got -1"


# ------------------------------------------------------------------ optional fields never reach the model

def test_optional_fields_never_enter_the_model_matrix_or_the_score():
    spec = load_spec("hmda")
    assert not set(OPTIONAL_FIELDS) & set(spec.model_columns())
    variants = [APPLICATION, {**APPLICATION, **OPTIONAL},
                {**APPLICATION, "applicant": {"name": "Zed", "address": "1 Main St, Boston"},
                 "loan_amount": 1e9, "application_date": "1999-01-01", "product": "jumbo ARM"}]
    parsed = [parse_application(v) for v in variants]
    matrix = matrix_from_records(spec, parsed)
    assert matrix.shape == (3, len(spec.model_columns())) and (matrix == matrix[0]).all()
    decisions = Scorer.load("hmda").score_many(variants)
    assert len({(d.risk, d.reasons) for d in decisions}) == 1
    assert decisions[1].application["applicant"]["name"] == "Jordan Avery"


# ------------------------------------------------------------------ CSV files

CSV_TEXT = """\
applicant_name,applicant_address,debt_to_income,housing_expense_to_income,loan_to_value,consumer_credit_history,\
mortgage_credit_history,public_bad_credit_record,mortgage_insurance_denied,self_employed,condominium,loan_amount
Ann Lee,1 Main St,0.30,0.20,0.80,1,1,no,no,no,no,200000
Bo Chen,2 Main St,-1,0.20,0.80,1,1,no,no,no,no,
Cy Diaz,3 Main St,0.30,,0.80,1,1,no,no,no,no,
Di Eze,4 Main St,0.30,0.20,0.80,2.5,1,maybe,no,no,no,
Ed Fox,5 Main St,1.20,0.90,1.30,6,4,yes,YES,No,True,350000
"""


def test_csv_rows_are_validated_one_by_one_with_row_numbers(tmp_path):
    path = tmp_path / "apps.csv"
    path.write_text(CSV_TEXT)
    rows = read_applications_csv(path)
    assert [number for number, _, _ in rows] == [2, 3, 4, 5, 6]
    valid = {number: app for number, app, error in rows if error is None}
    errors = {number: error.problems for number, _, error in rows if error is not None}
    assert sorted(valid) == [2, 6] and sorted(errors) == [3, 4, 5]
    assert valid[2]["applicant"] == {"name": "Ann Lee", "address": "1 Main St"}
    assert valid[2]["loan_amount"] == 200000.0 and valid[2]["public_bad_credit_record"] is False
    assert valid[6]["mortgage_insurance_denied"] is True and valid[6]["condominium"] is True
    assert errors[3] == ["debt_to_income must be between 0 and 3; got -1.0"]
    assert errors[4] == ["housing_expense_to_income is required (a number between 0 and 3); it is missing"]
    assert errors[5] == ["consumer_credit_history must be a whole number between 1 and 6; got '2.5'",
                         "public_bad_credit_record must be true or false; got 'maybe'"]


def test_csv_with_an_unknown_column_names_it(tmp_path):
    path = tmp_path / "apps.csv"
    path.write_text(CSV_TEXT.splitlines()[0] + ",race\n" + CSV_TEXT.splitlines()[1] + ",x\n")
    [(_, app, error)] = read_applications_csv(path)
    assert app is None and error.problems[0].startswith("race is not a field of this application")


# ------------------------------------------------------------------ JSON files and stdin

def test_json_file_and_stdin(tmp_path, monkeypatch):
    path = tmp_path / "app.json"
    path.write_text(json.dumps(APPLICATION))
    assert read_application_json(path) == parse_application(APPLICATION)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(APPLICATION)))
    assert read_application_json("-") == parse_application(APPLICATION)


@pytest.mark.parametrize("content, message", [
    (None, "application file not found: "),
    ("{not json", "application is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    (b"\xff\xfe\x00binary", "is not UTF-8 text (expected JSON)"),
])
def test_unreadable_json_files_are_invalid_applications(tmp_path, content, message):
    path = tmp_path / "app.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InvalidApplicationError) as caught:
        read_application_json(path)
    assert message in caught.value.problems[0]


def test_a_directory_is_not_an_application(tmp_path):
    with pytest.raises(InvalidApplicationError, match="application file expected, got a directory"):
        read_application_json(tmp_path)


# ------------------------------------------------------------------ properties

FEATURES = load_spec("hmda").input_fields
valid_values = st.fixed_dictionaries({
    f.name: (st.floats(f.min, f.max, allow_nan=False) if f.type == "float" else
             st.integers(int(f.min), int(f.max)) if f.type == "int" else st.booleans())
    for f in FEATURES})


@settings(max_examples=150, deadline=None)
@given(valid_values)
def test_any_in_range_application_parses_unchanged(data):
    parsed = parse_application(data)
    assert {k: parsed[k] for k in data} == data


@settings(max_examples=150, deadline=None)
@given(valid_values, st.sampled_from([f for f in FEATURES if f.type == "float"]),
       st.one_of(st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
                 st.floats(min_value=3.000001, allow_nan=False, allow_infinity=False)))
def test_any_out_of_range_ratio_is_one_problem_naming_it(data, feature, value):
    [problem] = problems_of({**data, feature.name: value})
    assert problem.startswith(f"{feature.name} must be between 0 and 3; got ")


junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in FEATURES] + list(OPTIONAL_FIELDS) + ["other"]), junk))
def test_arbitrary_input_only_ever_raises_invalid_application_with_named_fields(data):
    try:
        parsed = parse_application({**APPLICATION, **data})
    except InvalidApplicationError as error:
        assert error.problems
        for problem in error.problems:
            field = problem.split(" ")[0].split(".")[0]
            assert field in {**APPLICATION, **data, **OPTIONAL_FIELDS}, problem
            assert any(word in problem for word in (" got ", "is required", "expected only")), problem
    else:
        assert np.isfinite([parsed[f.name] for f in FEATURES if f.type == "float"]).all()


@pytest.mark.parametrize("text, named", [
    ('{"debt_to_income": NaN}', "field 'debt_to_income' is NaN"),
    ('{"scores": [1, [2, Infinity]]}', "field 'scores' is Infinity"),
    ('{"outer": {"inner": -Infinity}}', "field 'outer' > field 'inner' is -Infinity"),
    ('{"debt_to_income": {"": Infinity}}', "field 'debt_to_income' > field '' is Infinity"),
    ('{"a": [{"b": {"c": NaN}}]}', "field 'a' > field 'b' > field 'c' is NaN"),
    ("NaN", "as a whole is NaN"),
])
def test_json_constants_are_refused_with_the_field_that_holds_them(text, named):
    with pytest.raises(InvalidApplicationError) as error:
        parse_application_text(text)
    assert named in error.value.problems[0] and "expected a finite number" in error.value.problems[0]


def test_a_field_given_twice_inside_a_field_is_named_from_the_top():
    with pytest.raises(InvalidApplicationError) as error:
        parse_application_text('{"loan_amount": 1, "debt_to_income": {"x": 1, "x": 2}}')
    assert "field 'debt_to_income' > gives 'x' more than once" in error.value.problems[0]


def test_an_oversized_integer_is_refused_with_its_field():
    with pytest.raises(InvalidApplicationError) as error:
        parse_application_text('{"x_0": ' + "9" * 31 + "}")
    assert "field 'x_0' has an integer of 31 digits" in error.value.problems[0]
