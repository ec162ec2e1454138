"""The wording template: a replacement carries every key and only the placeholders the default uses."""
from __future__ import annotations

import re

import pytest

from lendsafe.errors import ConfigurationError
from lendsafe.notice.settings import NoticeSettings


def test_replacement_template_must_carry_every_key(tmp_path):
    path = tmp_path / "wording.toml"
    path.write_text('[headings]\ntitle = "Notice"\n[text]\n')
    with pytest.raises(ConfigurationError, match="lacks"):
        NoticeSettings(template_path=path)


def test_a_template_written_before_a_later_key_takes_the_default_wording_for_it(tmp_path):
    from lendsafe.notice.wording import DEFAULT_TEMPLATE, load_wording

    path = tmp_path / "wording.toml"
    path.write_text(re.sub(r"(?m)^educational = .*\n", "", DEFAULT_TEMPLATE.read_text()))
    assert "educational =" not in path.read_text()
    assert load_wording(path)["headings"]["educational"] == load_wording()["headings"]["educational"]


@pytest.mark.parametrize("old, new, words", [
    ("Page {page}", "Page {page} {secret}", "[text] footer_page uses unknown placeholder(s) ['secret']"),
    ("Page {page}", "Page {page.__class__}", "unknown placeholder(s) ['page.__class__']"),
    ("Page {page}", "Page {page", "[text] footer_page has malformed braces"),
    ('title = "Notice of Action', 'title = 5\nx = "', "[headings] title must be text"),
])
def test_a_wording_template_with_unknown_placeholders_is_refused(old, new, words, tmp_path):
    from lendsafe.errors import ConfigurationError
    from lendsafe.notice.wording import DEFAULT_TEMPLATE

    wording = tmp_path / "wording.toml"
    wording.write_text(DEFAULT_TEMPLATE.read_text().replace(old, new, 1))
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        NoticeSettings(template_path=wording)
