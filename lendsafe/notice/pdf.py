"""The notice PDF: reportlab platypus on US Letter, deterministic (invariant=1, dates taken from the
notice), with a footer of document id, evidence hash and page on every page and, on a specimen, a
diagonal SPECIMEN mark. Only reportlab's public API is used; reportlab is imported inside the functions
that draw. Paragraphs are cached and shared between notices, so drawing happens under one lock.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, Callable

from lendsafe.notice.dates import format_date
from lendsafe.notice.model import Notice
from lendsafe.notice.text import (BASE_FONT, BOLD_FONT, STANDARD_BOLD, STANDARD_FONT, clean_text, font_for_char,
                                  load_font, markup, truncate)

MAX_PAGES = 2
_RENDER_LOCK = threading.Lock()     # reportlab objects are shared between notices (see _cached_para)
PAGE_MARGIN = 54.0          # points (0.75 inch) on every side of US Letter
FOOTER_SPACE = 30.0
FRAME_PADDING = 6.0         # reportlab's Frame default padding on each side
BODY_SIZE = 9.5
SPECIMEN_RGB = (0.75, 0.1, 0.1)
SPECIMEN_MARK_GRAY = 0.86   # the diagonal mark is drawn under the text, light enough to read through
SPECIMEN_MARK_WIDTH = 0.6   # share of the page diagonal the mark spans


@lru_cache(maxsize=1)
def _styles() -> dict[str, Any]:
    """Paragraph styles, built once (fonts registered on first use)."""
    from reportlab.lib.colors import Color
    from reportlab.lib.styles import ParagraphStyle

    body = ParagraphStyle("body", fontName=STANDARD_FONT, fontSize=BODY_SIZE, leading=12.2, splitLongWords=1)
    return {
        "specimen": ParagraphStyle("specimen", parent=body, fontName=STANDARD_BOLD, textColor=Color(*SPECIMEN_RGB),
                                   spaceAfter=6),
        "title": ParagraphStyle("title", parent=body, fontName=STANDARD_BOLD, fontSize=14, leading=18, spaceAfter=6),
        "heading": ParagraphStyle("heading", parent=body, fontName=STANDARD_BOLD, fontSize=10.5, leading=13,
                                  spaceBefore=9, spaceAfter=3),
        "body": body,
        "name": ParagraphStyle("name", parent=body, fontSize=10.5, leading=13),
        "item": ParagraphStyle("item", parent=body, leftIndent=16, bulletIndent=2, spaceAfter=1),
        "block": ParagraphStyle("block", parent=body, leftIndent=16, spaceBefore=3, spaceAfter=3),
    }


def _frame_width() -> float:
    from reportlab.lib.pagesizes import LETTER

    return LETTER[0] - 2 * PAGE_MARGIN


def para(text: str, style: str = "body", *, bullet: str | None = None):
    """A paragraph of cleaned text; identical ones are shared between notices (parsed and wrapped once)."""
    return _cached_para(text, style, bullet)


@lru_cache(maxsize=2048)
def _cached_para(text: str, style: str, bullet: str | None):
    chosen = _styles()[style]
    text = markup(text, width=_frame_width() - chosen.leftIndent - 2, size=chosen.fontSize,
                  bold=chosen.fontName == STANDARD_BOLD)
    return _paragraph_class()(text, chosen, bulletText=bullet)


@lru_cache(maxsize=1)
def _paragraph_class() -> type:
    """reportlab's Paragraph, keeping the line breaks it last computed (a shared paragraph is laid out
    at the same width in every notice, so it breaks its lines once). Only the public ``breakLines`` is
    overridden; reportlab's own attributes are left to reportlab."""
    from reportlab.platypus import Paragraph

    class LineBreaksKept(Paragraph):
        def breakLines(self, width, *args, **kwargs):
            key = (tuple(width) if isinstance(width, (list, tuple)) else width, args, tuple(sorted(kwargs.items())))
            kept = self.__dict__.get("_lendsafe_kept_lines")
            if kept is None or kept[0] != key:
                kept = (key, super().breakLines(width, *args, **kwargs))
                self._lendsafe_kept_lines = kept
            return kept[1]

    return LineBreaksKept


class Section(tuple):
    """A heading and its paragraphs, kept on one page when they fit (``KeepTogether`` when laid out)."""


def section(heading: str, *flowables) -> Section:
    return Section((para(heading, "heading"), *flowables))


def _in_line(story: list) -> list:
    """The story with every section's flowables in line."""
    return [flowable for item in story for flowable in (item if isinstance(item, Section) else (item,))]


def _kept_together(story: list) -> list:
    """The story with every section a ``KeepTogether``."""
    from reportlab.platypus import KeepTogether

    return [KeepTogether(list(item)) if isinstance(item, Section) else item for item in story]


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _header_story(n: Notice) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    applied = (t["application_date"].format(date=format_date(n.application_date)) if n.application_date
               else t["application_date_missing"])
    story = [*specimen_header(n), para(h["title"], "title"),
             para(t["notice_date"].format(date=format_date(n.notice_date))), para(applied),
             *parties_story(n)]
    return story


def specimen_header(n: Any) -> list:
    return [para(n.wording["text"]["specimen_header"], "specimen")] if n.specimen else []


def parties_story(n: Any) -> list:
    """The creditor's and the applicant's name and address."""
    h, t = n.wording["headings"], n.wording["text"]
    phone = t["phone"].format(phone=n.creditor_phone) if n.creditor_phone else ""
    story = [section(h["creditor"], para(n.creditor_name, "name"), para(_lines(n.creditor_address, phone)))]
    if n.applicant_name or n.applicant_address:
        story.append(section(h["applicant"], para(_lines(n.applicant_name, n.applicant_address))))
    return story


def _action_story(n: Notice, explanation_limit: int) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    action = (t["action_counteroffer"].format(terms=n.counteroffer_terms) if n.action == "counteroffer"
              else t["action_deny"])
    story = [section(h["action"], para(action))]
    if n.reasons_mode == "specific":
        items = [para(r, "item", bullet=f"{i}.") for i, r in enumerate(n.reasons, 1)]
        story.append(section(h["reasons"], para(t["reasons_intro"]), *items))
    else:
        name, address, phone = n.request_contact
        contact = _lines(name, address, t["phone"].format(phone=phone) if phone else "")
        story.append(section(h["request"], para(t["request_text"]), para(contact, "block")))
    explanation = truncate(n.explanation or "", explanation_limit) if explanation_limit > 0 else ""
    if explanation:
        story.append(section(h["explanation"], para(explanation)))
    if n.educational:
        story.append(section(h["educational"], *(para(sentence) for sentence in n.educational)))
    return story


def ecoa_section(n: Any):
    h, t = n.wording["headings"], n.wording["text"]
    agencies = [para(_lines(name, address), "block") for name, address in n.agencies]
    return section(h["ecoa"], para(t["ecoa_text"]), *agencies)


def creditor_contact(n: Any) -> str:
    """The creditor's name, address and telephone as one block of lines."""
    phone = n.wording["text"]["phone"].format(phone=n.creditor_phone) if n.creditor_phone else ""
    return _lines(n.creditor_name, n.creditor_address, phone)


def _rights_story(n: Notice) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    story = [ecoa_section(n)]
    if n.consumer_report:
        name, address, phone = n.consumer_report
        story.append(section(h["fcra"], para(t["fcra_text"]),
                              para(_lines(name, address, t["phone"].format(phone=phone)), "block"),
                              para(t["fcra_rights"])))
    if n.third_party:
        story.append(section(h["third_party"], para(t["third_party_text"]), para(creditor_contact(n), "block")))
    if n.credit_score:
        story.append(_score_section(n))
    return story


def _score_section(n: Notice):
    h, t, s = n.wording["headings"], n.wording["text"], n.credit_score
    lines = [t["score_value"].format(score=s["score"]), t["score_range"].format(low=s["low"], high=s["high"]),
             t["score_date"].format(date=format_date(s["date"])), t["score_source"].format(source=s["source"])]
    factors = [para(f, "item", bullet=f"{i}.") for i, f in enumerate(s["factors"], 1)]
    return section(h["score"], para(t["score_intro"]), para("\n".join(lines), "block"),
                    para(t["score_factors"]), *factors)


@lru_cache(maxsize=8)
def _specimen_geometry(text: str) -> tuple[str, float, float, float, float, float]:
    """(font, size, width, x, y, angle) of the diagonal mark: centred, along the page diagonal (computed once)."""
    import math

    from reportlab.lib.pagesizes import LETTER
    from reportlab.pdfbase.pdfmetrics import stringWidth

    font = STANDARD_BOLD if all(font_for_char(c) == STANDARD_FONT for c in text) else load_font(BOLD_FONT).fontName
    diagonal = math.hypot(*LETTER)
    size = min(140.0, SPECIMEN_MARK_WIDTH * diagonal / max(stringWidth(text, font, 1), 1e-6))
    return font, size, stringWidth(text, font, size), LETTER[0] / 2, LETTER[1] / 2, math.degrees(math.atan2(LETTER[1], LETTER[0]))


def _draw_specimen_mark(canvas, text: str) -> None:
    """The diagonal SPECIMEN mark, drawn under the page's text."""
    font, size, width, x, y, angle = _specimen_geometry(text)
    canvas.saveState()
    canvas.setFillGray(SPECIMEN_MARK_GRAY)
    canvas.translate(x, y)
    canvas.rotate(angle)
    canvas.setFont(font, size)
    # the trailing space ends the word: poppler would otherwise add the next text drawn to it
    canvas.drawString(-width / 2, -size * 0.35, text + " ")
    canvas.restoreState()


@lru_cache(maxsize=4096)
def _cleaned(text: str, limit: int) -> str:
    """clean_text of a footer line, once per distinct text (footers repeat on every page and notice)."""
    return clean_text(text, limit)


@lru_cache(maxsize=4096)
def _line_font(text: str) -> str:
    """The font a footer line is drawn in: the standard font when it has every character."""
    return STANDARD_FONT if all(font_for_char(c) == STANDARD_FONT for c in text) else load_font(BASE_FONT).fontName


def _footer_drawer(n: Any):
    """Draws each page's footer (document id, evidence hash, page) and, on a specimen, the diagonal mark."""
    t = n.wording["text"]
    document = _cleaned(t["footer_document"].format(document_id=n.document_id), 200)
    evidence = _cleaned(t["footer_evidence"].format(sha256=n.evidence_sha256), 200)
    mark = _cleaned(t["specimen_mark"], 40) if n.specimen else ""

    def draw(canvas, doc) -> None:
        from reportlab.lib.pagesizes import LETTER

        page = t["footer_page"].format(page=doc.page)
        canvas.saveState()
        for text, y, right in ((document, 10, False), (evidence, 19, False), (page, 10, True)):
            canvas.setFont(_line_font(text), 7)
            draw_at = canvas.drawRightString if right else canvas.drawString
            draw_at(LETTER[0] - PAGE_MARGIN if right else PAGE_MARGIN, PAGE_MARGIN - y, text)
        canvas.restoreState()
        if mark:
            _draw_specimen_mark(canvas, mark)

    return draw


def build_document(n: Any, story: list, title: str) -> tuple[bytes, int]:
    """PDF bytes and page count of `story` on US Letter, with `n`'s footer (and specimen mark) on every page.

    A story that surely fits one page is laid out in line: every section then fits where it stands, and a
    ``KeepTogether`` would split into exactly these flowables, so the bytes are the same without its trial
    layouts. Any other story is laid out with its sections kept together."""
    in_line = _in_line(story)
    return _build_document(n, in_line if _fits_one_page(in_line) else _kept_together(story), title)


def _fits_one_page(flowables: list) -> bool:
    """True when the flowables stacked with every space before and after counted in full (more than the frame
    lays out, which merges them) fit one page's frame: then nothing breaks or moves to another page."""
    from reportlab.lib.pagesizes import LETTER

    width = _frame_width() - 2 * FRAME_PADDING
    height = LETTER[1] - 2 * PAGE_MARGIN - FOOTER_SPACE - 2 * FRAME_PADDING
    total = 0.0
    for flowable in flowables:
        total += flowable.wrap(width, height)[1] + flowable.getSpaceBefore() + flowable.getSpaceAfter()
        if total > height:
            return False
    return True


def _build_document(n: Any, story: list, title: str) -> tuple[bytes, int]:
    import io

    from reportlab.lib.pagesizes import LETTER
    from reportlab.platypus import SimpleDocTemplate

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=LETTER, invariant=1, leftMargin=PAGE_MARGIN,
                            rightMargin=PAGE_MARGIN, topMargin=PAGE_MARGIN, bottomMargin=PAGE_MARGIN + FOOTER_SPACE,
                            title=title, author="LendSafe", creator="LendSafe", subject=n.document_id)
    footer = _footer_drawer(n)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue(), doc.page


def _build_pdf(n: Notice, explanation_limit: int) -> tuple[bytes, int]:
    story = _header_story(n) + _action_story(n, explanation_limit) + _rights_story(n)
    return build_document(n, story, n.wording["headings"]["title"])


def render_pdf(notice: Notice) -> bytes:
    """The notice as PDF bytes: identical bytes for an identical Notice, at most MAX_PAGES pages.

    When the notice would run longer, the explanation narrative is shortened (with an ellipsis),
    then left out; required elements are never dropped.
    """
    limit = notice.max_explanation_chars
    with _RENDER_LOCK:
        while True:
            pdf, pages = _build_pdf(notice, limit)
            if pages <= MAX_PAGES or limit == 0 or not notice.explanation:
                return pdf
            limit = limit // 2 if limit > 100 else 0


def render_story(n: Any, story: Callable[[], list], title: str) -> bytes:
    """PDF bytes of another kind of notice `n` (same fonts, footer and specimen mark); `story()` is
    called under the render lock because paragraphs are shared between notices."""
    with _RENDER_LOCK:
        return build_document(n, story(), title)[0]
