"""Reading regulation sources into citable passages: project JSONL, official RegML XML, US Code chunks."""
from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lendsafe.knowledge import ingest
from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.knowledge.ingest import CorpusFormatError, label_citation, marker_level, read_passages

SHARED_REGS = (PROJECT_ROOT / ".." / "shared" / "regs").resolve()
REG_B_XML = "reg_b_1002_2017-20417_20220101.xml"
USC_JSON = "usc15_fcra_ecoa_chunks.json"


pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(scope="module")
def shared_regs() -> Path:
    if not (SHARED_REGS / REG_B_XML).exists():
        pytest.skip(f"official regulation text not available at {SHARED_REGS}")
    return SHARED_REGS


@pytest.mark.parametrize("label, form, expected", [
    ("1002-9-a-2-i", "", "12 CFR 1002.9(a)(2)(i)"),
    ("1002-2-z", "", "12 CFR 1002.2(z)"),
    ("1002-9-b-2-Interp-1", "", "12 CFR 1002, Supp. I, comment 9(b)(2)-1"),
    ("1002-2-f-Interp-4-iii", "", "12 CFR 1002, Supp. I, comment 2(f)-4.iii"),
    ("1002-9-Interp-2", "", "12 CFR 1002, Supp. I, comment 9-2"),
    ("1002-12-b-Interp-1", "", "12 CFR 1002, Supp. I, comment 12(b)-1"),
    ("1002-C-Interp-1-i", "", "12 CFR 1002, Supp. I, App. C, comment 1.i"),
    ("1002-C-4-p1", "", "12 CFR 1002, App. C, para. 4"),
    ("1002-C-I-p16", "Form C-1", "12 CFR 1002, App. C, Form C-1"),
    ("1022-72-a", "", "12 CFR 1022.72(a)"),
])
def test_label_citation(label, form, expected):
    assert label_citation(label, form) == expected


def test_marker_level_tells_letters_from_roman_numerals():
    assert marker_level("a", []) == 0
    assert marker_level("1", [(0, "a")]) == 1
    assert marker_level("A", [(0, "a"), (1, "1")]) == 2
    assert marker_level("i", [(0, "a"), (1, "1"), (2, "A")]) == 3          # first roman item
    assert marker_level("i", [(0, "h")]) == 0                              # letter after (h)
    assert marker_level("ii", [(0, "a"), (1, "1"), (2, "A"), (3, "i")]) == 3
    assert marker_level("b", [(0, "a"), (1, "1"), (2, "A")]) == 0


SAMPLE_REGML = """<?xml version='1.0' encoding='UTF-8'?>
<regulation xmlns="eregs"><preamble><documentNumber>2099-1</documentNumber>
<effectiveDate>2099-01-01</effectiveDate></preamble>
<part label="1002"><content>
 <section label="1002-9" sectionNum="9"><subject>§ 1002.9 Notifications.</subject>
  <paragraph label="1002-9-a" marker="(a)"><title type="keyterm">Timing.</title><content/>
   <paragraph label="1002-9-a-1" marker="(1)"><content>A creditor shall notify an applicant within:</content>
    <paragraph label="1002-9-a-1-i" marker="(i)"><content>30 days after a completed <ref target="1002-2-f">application</ref>.</content></paragraph>
   </paragraph>
  </paragraph>
 </section>
 <appendix appendixLetter="C" label="1002-C"><appendixTitle>Appendix C—Sample Forms</appendixTitle>
  <appendixSection label="1002-C-5"><subject/>
   <paragraph label="1002-C-5-h1"><title>Form C-1—Sample Notice</title><content/>
    <paragraph label="1002-C-5-h1-p1"><content>Date:</content></paragraph>
   </paragraph></appendixSection>
  <appendixSection label="1002-C-I"><subject>Part I—Principal Reasons</subject>
   <paragraph label="1002-C-I-p16"><content>__Excessive obligations in relation to income</content></paragraph>
  </appendixSection>
 </appendix>
 <interpretations label="1002-Interp"><interpSection label="1002-9-Interp"><title>Section 1002.9</title>
  <interpParagraph label="1002-9-b-2-Interp-1" marker="1."><title>Number of reasons.</title>
   <content>Disclosing more than four reasons is not likely to help the applicant.</content></interpParagraph>
 </interpSection></interpretations>
</content></part></regulation>"""


def test_read_regml_builds_passages_with_citations_titles_and_lead_ins(tmp_path):
    path = tmp_path / "sample.xml"
    path.write_text(SAMPLE_REGML, encoding="utf-8")
    passages = {p.citation: p for p in read_passages(path)}
    assert set(passages) == {"12 CFR 1002.9(a)(1)", "12 CFR 1002.9(a)(1)(i)", "12 CFR 1002, App. C, Form C-1",
                             "12 CFR 1002, Supp. I, comment 9(b)(2)-1"}
    leaf = passages["12 CFR 1002.9(a)(1)(i)"]
    assert leaf.text == "A creditor shall notify an applicant within: 30 days after a completed application."
    assert "Timing" in leaf.title and leaf.effective_date == "2099-01-01" and "2099-1" in leaf.source
    assert "Excessive obligations" in passages["12 CFR 1002, App. C, Form C-1"].text     # form blanks dropped
    assert passages["12 CFR 1002, Supp. I, comment 9(b)(2)-1"].id == "1002-9-b-2-Interp-1"


SAMPLE_CHUNKS = [{
    "section": "1681m", "heading": "Requirements on users of consumer reports", "subsection": "(a) Duties",
    "text": "\n# Title 15\n#### § 1681m. Requirements\n##### (a) Duties of users taking adverse actions\n\n"
            "If any person takes any adverse action based on a consumer report, the person shall\n\n"
            "(1) provide notice of the adverse action to the consumer;\n\n"
            "(2) provide to the consumer written or electronic disclosure\n\n"
            "(A) of a numerical credit score used by such person; and\n\n"
            "(B) of the information set forth in section 1681g(f)(1).\n"}]


def test_read_usc_chunks_cites_each_marked_paragraph(tmp_path):
    path = tmp_path / "chunks.json"
    path.write_text(json.dumps(SAMPLE_CHUNKS), encoding="utf-8")
    passages = {p.citation: p for p in read_passages(path)}
    assert list(passages) == ["15 U.S.C. 1681m(a)", "15 U.S.C. 1681m(a)(1)", "15 U.S.C. 1681m(a)(2)",
                              "15 U.S.C. 1681m(a)(2)(A)", "15 U.S.C. 1681m(a)(2)(B)"]
    score = passages["15 U.S.C. 1681m(a)(2)(A)"]
    assert score.text.startswith("If any person takes any adverse action")          # lead-ins repeated
    assert score.text.endswith("of a numerical credit score used by such person; and")
    assert "Duties of users" in score.title


def test_project_jsonl_requires_every_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"citation": "12 CFR 1002.9(a)", "text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="missing"):
        read_passages(path)


def test_unknown_or_missing_sources_are_reported(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CorpusFormatError, match="none"):
        read_passages(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_passages(tmp_path / "absent")


def test_long_paragraphs_are_split_below_the_limit():
    text = " ".join(f"Sentence number {i} about adverse action notices." for i in range(120))
    pieces = ingest.split_long(text)
    assert len(pieces) > 1 and all(len(p) <= ingest.MAX_PASSAGE_CHARS for p in pieces)


def test_official_sources_parse_into_labelled_passages(shared_regs):
    passages = read_passages(shared_regs)
    citations = {p.citation for p in passages}
    required = {f"12 CFR 1002, Supp. I, comment 9(b)(2)-{n}" for n in range(1, 10)} | {
        "12 CFR 1002.9(a)(2)", "12 CFR 1002.9(b)(1)", "12 CFR 1002.9(b)(2)", "12 CFR 1002.2(z)",
        "12 CFR 1002.6(b)(2)(ii)", "12 CFR 1002.12(b)(1)", "12 CFR 1002, App. C, para. 4",
        "12 CFR 1002, App. C, Form C-1", "15 U.S.C. 1681m(a)", "15 U.S.C. 1681m(a)(4)(A)",
        "15 U.S.C. 1681g(f)(1)", "15 U.S.C. 1681j(b)", "15 U.S.C. 1691(d)(3)", "12 CFR 1022.72(a)"}
    assert required <= citations, sorted(required - citations)
    assert len({p.id for p in passages}) == len(passages)
    checklist = [p.text for p in passages if p.citation == "12 CFR 1002, App. C, Form C-1"]
    assert any("Excessive obligations in relation to income" in text for text in checklist)
    assert all(len(p.text) <= ingest.MAX_PASSAGE_CHARS for p in passages)


def _trimmed_reg_b(source: Path, target: Path) -> Path:
    """Official Reg B XML keeping only § 1002.9, its commentary and Appendix C (a fast index)."""
    ET.register_namespace("", "eregs")
    tree = ET.parse(source)
    keep = {"1002-9", "1002-9-Interp", "1002-C", "1002-C-Interp"}
    for parent in tree.getroot().iter():
        for child in list(parent):
            tag = child.tag.split("}")[-1]
            if tag in {"section", "interpSection", "appendix"} and child.get("label") not in keep:
                parent.remove(child)
    tree.write(target, encoding="utf-8", xml_declaration=True)
    return target


def test_index_command_indexes_official_text(shared_regs, tmp_path, monkeypatch):
    from lendsafe.cli import main
    from lendsafe.knowledge.retrieval import KnowledgeBase

    source = tmp_path / "official"
    source.mkdir()
    _trimmed_reg_b(shared_regs / REG_B_XML, source / REG_B_XML)
    monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["index", "--source", str(source)]) == 0
    expected_count = len(read_passages(source))
    assert f"{expected_count} passages indexed (built)" in out.getvalue()
    assert str(tmp_path / "home" / "index") in out.getvalue()

    kb = KnowledgeBase(Settings(home=tmp_path / "home"), source=source)
    assert kb.ensure_index()["built"] is False
    hits = kb.search("how many principal reasons should a denial notice list", k=4)
    assert "12 CFR 1002, Supp. I, comment 9(b)(2)-1" in [h.citation for h in hits]
    hits = kb.search("statement that the denial was based on internal standards or a failing score", k=4)
    assert "12 CFR 1002.9(b)(2)" in [h.citation for h in hits]
