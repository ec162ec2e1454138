"""Sampling-mode report: settings, and how a wording's departure from the composer's is counted."""
import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.errors import ConfigurationError
from lendsafe.train.sampling import SamplingReportSettings, card_section, departures


def test_the_shipped_settings_read():
    settings = SamplingReportSettings.read(PROJECT_ROOT / "data" / "sweep" / "sampling.toml")
    assert settings.decisions >= 1 and min(settings.temperatures) > 0 and settings.adapter.is_absolute()


def test_bad_settings_are_refused(tmp_path):
    (tmp_path / "s.toml").write_text("[sampling]\ntemperatures = [0.0]\n")
    with pytest.raises(ConfigurationError, match="temperatures"):
        SamplingReportSettings.read(tmp_path / "s.toml")


def test_departures_mask_figures_and_count_sentences_the_composer_never_writes():
    composer = ["Your ratio is 0.45. We cannot approve.", "Your ratio is 0.61. We cannot approve."]
    texts = ["Your ratio is 0.45. We cannot approve.", "Your ratio of 0.61 is too high. We cannot approve."]
    assert departures(texts, composer) == {"texts": 2, "same_as_composer": 1, "distinct_texts": 2,
                                           "distinct_sentences": 3, "sentences_not_written_by_composer": 1,
                                           "distinct_sentences_not_written_by_composer": 1}


def test_the_card_shows_one_row_per_writer():
    wording = {"same_as_composer": 3, "distinct_sentences": 9, "distinct_sentences_not_written_by_composer": 2}
    record = {"validation": {"evaluated": 4}, "writers": {
        "composer": {"first_pass": 4, "texts": 4, "meaning_errors": 0, "wording": wording},
        "sampled T=0.7": {"first_pass": 3, "texts": 4, "meaning_errors": 1, "wording": wording}}}
    assert "| sampled T=0.7 | 3/4 | 1 | 3 | 9 | 2 |" in card_section(record)
