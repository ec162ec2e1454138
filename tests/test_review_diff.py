"""What an edit changed (``lendsafe.review.diff``)."""
from __future__ import annotations

from lendsafe.review.diff import changed_words, paragraph_diff, sentences

BEFORE = "We cannot approve your application. Your income is low. You may ask for your report."
AFTER = "We cannot approve your application. Your income is insufficient. You may ask for your report."


def test_sentences_split_on_sentence_ends():
    assert sentences(BEFORE) == ["We cannot approve your application.", "Your income is low.",
                                 "You may ask for your report."]


def test_the_diff_shows_the_changed_sentence_only():
    diff = paragraph_diff(BEFORE, AFTER, before_label="revision 0", after_label="revision 1")
    lines = diff.splitlines()
    assert lines[:2] == ["--- revision 0", "+++ revision 1"]
    assert "-Your income is low." in lines and "+Your income is insufficient." in lines
    assert not any(line.startswith(("-", "+")) and "approve" in line for line in lines[2:])


def test_no_change_is_an_empty_diff_and_whitespace_changes_are_named():
    assert paragraph_diff(BEFORE, BEFORE) == ""
    assert "whitespace changed" in paragraph_diff(BEFORE, BEFORE.replace(". ", ".  ", 1))


def test_changed_words_counts_removed_and_added():
    assert changed_words(BEFORE, AFTER) == (1, 1)
    assert changed_words(BEFORE, BEFORE + " Thank you.") == (0, 2)
