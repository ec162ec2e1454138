"""Notice text: cleaning to what the fonts can draw, of bounded length."""
from __future__ import annotations

import pytest

from lendsafe.notice.text import clean_text


def test_clean_text_drops_controls_and_truncates_with_an_ellipsis():
    assert clean_text("A\x00B\u202eC\x07  D", 100) == "ABC D"
    cut = clean_text("x" * 50, 10)
    assert len(cut) == 10 and cut.endswith("\u2026")


def test_invisible_format_characters_are_cleaned_and_unprintable_names_refused():
    from lendsafe.errors import InvalidApplicationError
    from lendsafe.notice.text import applicant_text, clean_text

    assert clean_text("Jor\u00addan\u200b Avery\ufeff", 100) == "Jordan Avery"
    assert clean_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", 100).count("\u200c") == 1, "ZWNJ kept"
    with pytest.raises(InvalidApplicationError, match=r"applicant.name must be text the notice fonts can print.*U\+13000"):
        applicant_text("name", "Ann \U00013000")
