"""Notice settings: every value documented and type-checked, the Appendix A agency table, phones, files."""
from __future__ import annotations

import json
import re

import pytest

from lendsafe.errors import ConfigurationError
from lendsafe.notice.settings import AGENCIES, CREDITOR_TYPES, NoticeSettings, is_phone, is_toll_free

from notice_helpers import SCORE_SETTINGS, lender


def test_every_notice_setting_is_documented():
    assert all(NoticeSettings.help_table().values())


def test_settings_round_trip_through_dict_and_file(tmp_path):
    settings = NoticeSettings(creditor_name="Harbor Bank", creditor_type="national_bank", **SCORE_SETTINGS)
    assert NoticeSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings.to_dict()))
    assert NoticeSettings.from_file(path) == settings


def test_settings_added_later_are_recorded_only_when_set():
    assert not {"educational_section", "educational_options"} & set(NoticeSettings().to_dict())
    on = NoticeSettings(educational_section=True, educational_options=3)
    assert on.to_dict()["educational_section"] is True and NoticeSettings.from_dict(on.to_dict()) == on


@pytest.mark.parametrize("changes, fragment", [
    ({"creditor_type": "bank"}, "creditor_type must be one of"),
    ({"creditor_name": " "}, "creditor_name must be a non-empty text"),
    ({"reasons_mode": "vague"}, "reasons_mode must be one of"),
    ({"cra_phone": ""}, "cra_phone must be a non-empty text"),
    ({**SCORE_SETTINGS, "credit_score": 900}, "credit_score must lie in score_range"),
    ({**SCORE_SETTINGS, "score_factors": ("a", "b", "c", "d", "e")}, "1 to 4 key factors"),
    ({**SCORE_SETTINGS, "score_date": "yesterday"}, "score_date must be a date"),
    ({"educational_options": 0}, "educational_options must be a whole number from 1 to 6"),
    ({"educational_options": 7}, "educational_options must be a whole number from 1 to 6"),
    ({"educational_section": "often"}, "educational_section must be true or false"),
])
def test_settings_reject_bad_values_with_a_clear_message(changes, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        NoticeSettings(**changes)


def test_unknown_setting_names_are_rejected():
    with pytest.raises(ConfigurationError, match="unknown notice settings"):
        NoticeSettings.from_dict({"creditor": "x"})


def test_every_creditor_type_names_agencies_from_the_table():
    for creditor_type, keys in CREDITOR_TYPES.items():
        agencies = NoticeSettings(creditor_type=creditor_type).agencies()
        assert agencies == tuple(AGENCIES[k] for k in keys) and all(name and address for name, address in agencies)
    assert NoticeSettings(creditor_type="large_bank").agencies()[0][0].startswith("Bureau of Consumer Financial")
    assert NoticeSettings(agency_name="X Agency", agency_address="1 Road").agencies() == (("X Agency", "1 Road"),)


def test_the_example_lender_settings_are_complete_and_real():
    settings = lender()
    assert not settings.is_specimen and settings.placeholders == ()
    assert settings.agencies() == (AGENCIES["occ"],) and settings.consumer_report_used
    assert is_toll_free(settings.cra_phone) and settings.incomplete_days == 30
    assert NoticeSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


@pytest.mark.parametrize("changes, fragment", [
    ({"agency": "fed"}, "agency must be one of"),
    ({"agency": ["occ", "bank"]}, "agency must be one of"),
    ({"creditor_phone": "call us"}, "creditor_phone must be a telephone number"),
    ({"creditor_phone": "555-0100"}, "creditor_phone must be a telephone number"),
    ({"cra_phone": "(503) 555-0100"}, "cra_phone must be a toll-free number"),
    ({"creditor_name": ""}, "creditor_name must be a non-empty text"),
    ({"incomplete_days": 3}, "incomplete_days must be between"),
])
def test_lender_settings_are_validated_with_the_field_named(changes, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        NoticeSettings.from_dict({**lender().to_dict(), **changes})


def test_phone_numbers():
    assert all(is_phone(p) for p in ("1-800-555-0100", "(503) 555-0142", "+44 20 7946 0000", "800.555.0100 ext. 12"))
    assert not any(is_phone(p) for p in ("555-0100", "call us", "1-800-LENDSAFE", "12", "+1"))
    assert is_toll_free("1 (888) 397-3742") and not is_toll_free("(503) 555-0142")


@pytest.mark.parametrize("data, words", [
    ({"score_factors": "abc"}, "score_factors must be a list of texts; got 'abc' (str)"),
    ({"credit_score": 700.5}, "credit_score must be a whole number (or nothing); got 700.5"),
    ({"credit_score": True}, "credit_score must be a whole number"),
    ({"consumer_report_used": "maybe"}, "consumer_report_used must be true or false"),
    ({"consumer_report_used": 0}, "consumer_report_used must be true or false"),
    ({"creditor_name": ["a"]}, "creditor_name must be text"),
    ({"score_range": [300]}, "score_range must be a list of two whole numbers"),
    ({"incomplete_days": "30"}, "incomplete_days must be a whole number"),
    ({"template_path": "/etc/passwd"}, "template_path must name a notice wording TOML file"),
    ({"template_path": 5}, "template_path must be a file path"),
])
def test_settings_of_the_wrong_type_are_refused_with_the_field_named(data, words):
    from lendsafe.errors import LendSafeError

    with pytest.raises(LendSafeError) as caught:
        NoticeSettings.from_dict(data)
    assert words in str(caught.value)


@pytest.mark.parametrize("word, value", [("no", False), ("No", False), ("false", False), ("yes", True), (True, True)])
def test_yes_and_no_are_read_as_booleans(word, value):
    assert NoticeSettings.from_dict({"consumer_report_used": word, "specimen": word}).consumer_report_used is value


@pytest.mark.parametrize("name, data, words", [
    ("a.json", b"{bad", "is not valid JSON"), ("a.json", b'{"specimen": true, "specimen": false}', "more than once"),
    ("a.json", b'{"credit_score": NaN}', "contains NaN"), ("a.json", b"[" * 100_000, "is not valid JSON"),
    ("a.json", b"[1]", "must be a table"), ("a.toml", b"x = = 1", "is not valid TOML"),
    ("a.toml", b"\xff\xfe", "is not UTF-8 text"), ("a.toml", b"#" * 300_000, "larger than 256,000 bytes"),
])
def test_unreadable_settings_files_are_refused(name, data, words):
    from lendsafe.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape(words)):
        NoticeSettings.from_bytes(name, data)
