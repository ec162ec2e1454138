"""Notice text: cleaning what applicants and lenders supply to what the fonts can draw and of bounded
length, choosing a font per run of text (standard Helvetica for Windows-1252, DejaVu Sans for other
scripts, WenQuanYi Zen Hei for CJK), reordering right-to-left lines, and the comparable form of text the
check reads back. reportlab, arabic_reshaper and bidi are imported inside the functions that use them.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

from lendsafe.errors import ArtifactNotFoundError, InvalidApplicationError

ELLIPSIS = "\u2026"
# Limits on free text so that a notice fits in two pages; longer text ends with an ellipsis.
TEXT_LIMITS = {"name": 120, "address": 300, "phone": 40, "terms": 500, "factor": 120, "source": 120,
               "educational": 600}
ADDRESS_MAX_LINES = 5

_BIDI_CONTROLS = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DROPPED_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Cf"}
# Format characters that shape a script (joiners in Arabic, Indic and emoji sequences): kept.
_KEPT_FORMAT = {"\u200c", "\u200d"}


def _dropped(ch: str) -> bool:
    """Invisible characters cleaning removes: controls, bidi overrides, soft hyphen and other format marks."""
    return ch in _BIDI_CONTROLS or (unicodedata.category(ch) in _DROPPED_CATEGORIES and ch not in _KEPT_FORMAT)


def applicant_text(name: str, text: Any) -> str:
    """The applicant's name or address as printed; InvalidApplicationError naming the field when it holds
    characters no notice font can draw (emoji, unassigned code points), which would print as boxes."""
    text = "" if text is None else str(text)
    unprintable = sorted({ch for ch in text if not ch.isspace() and not _dropped(ch) and not font_for_char(ch)})
    if unprintable:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in unprintable[:5])
        raise InvalidApplicationError([f"applicant.{name} must be text the notice fonts can print; got characters "
                                       f"they cannot ({shown}{', ...' if len(unprintable) > 5 else ''})"])
    return clean_address(text) if name == "address" else clean_text(text, TEXT_LIMITS["name"])


def clean_text(text: str | None, limit: int, *, keep_newlines: bool = False) -> str:
    """Drawable text: NFC, no control characters, glyphs the fonts lack as U+FFFD, at most `limit` chars."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\t", " ")
    lines = [_clean_line(line) for line in text.split("\n")]
    lines = [line for line in lines if line] if keep_newlines else [" ".join(l for l in lines if l)]
    return truncate("\n".join(lines), limit)


def clean_address(text: str | None) -> str:
    """An address: at most ADDRESS_MAX_LINES lines, TEXT_LIMITS['address'] characters."""
    lines = clean_text(text, 10 * TEXT_LIMITS["address"], keep_newlines=True).split("\n")
    if len(lines) > ADDRESS_MAX_LINES:
        lines = lines[:ADDRESS_MAX_LINES - 1] + [" ".join(lines[ADDRESS_MAX_LINES - 1:])]
    return truncate("\n".join(lines), TEXT_LIMITS["address"])


def _clean_line(line: str) -> str:
    kept = (ch for ch in line if not _dropped(ch))
    drawable = "".join(ch if font_for_char(ch) else "\ufffd" for ch in kept)
    return " ".join(drawable.split())


def truncate(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 1 characters and an ellipsis when it is longer."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def normalize(text: str) -> str:
    """Comparable text: NFKC, no bidi marks, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    return " ".join("".join(ch for ch in text if ch not in _BIDI_CONTROLS).split())


def compact(text: str) -> str:
    """Comparable text with no whitespace at all (immune to line wrapping)."""
    return "".join(normalize(text).split())


# Fonts, chosen per run of text: the standard Helvetica for Windows-1252 text (nothing to embed),
# DejaVu Sans for Greek, Cyrillic, Arabic, Hebrew and other Latin; WenQuanYi Zen Hei for CJK.

FONT_FILES = {
    "LSSans": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
    "LSSans-Bold": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0),
    "LSCJK": ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
}
BASE_FONT, BOLD_FONT, CJK_FONT = "LSSans", "LSSans-Bold", "LSCJK"
STANDARD_FONT, STANDARD_BOLD = "Helvetica", "Helvetica-Bold"
FONT_PACKAGES = "Debian packages fonts-dejavu-core and fonts-wqy-zenhei"


@lru_cache(maxsize=None)
def load_font(name: str):
    """Register (once) and return one of the FONT_FILES fonts."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    path, index = FONT_FILES[name]
    if not Path(path).is_file():
        raise ArtifactNotFoundError(f"font file {path} not found: install the {FONT_PACKAGES}")
    loaded = TTFont(name, path, subfontIndex=index)
    pdfmetrics.registerFont(loaded)
    return loaded


@lru_cache(maxsize=None)
def _font_charmap(name: str) -> frozenset[int]:
    return frozenset(load_font(name).face.charToGlyph)


@lru_cache(maxsize=65536)
def font_for_char(ch: str) -> str | None:
    """The font that draws `ch` (standard font first), or None when no font has it."""
    if ch == " " or (ch.isprintable() and _in_windows_1252(ch)):
        return STANDARD_FONT
    if ord(ch) in _font_charmap(BASE_FONT):
        return BASE_FONT
    if ord(ch) in _font_charmap(CJK_FONT):
        return CJK_FONT
    return None


def _in_windows_1252(ch: str) -> bool:
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def register_fonts() -> None:
    """Register the notice fonts with reportlab (idempotent)."""
    for name in FONT_FILES:
        load_font(name)


_RTL_CLASSES = {"R", "AL"}


def has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in _RTL_CLASSES for ch in text)


def _font_runs(text: str, bold: bool = False) -> str:
    """Paragraph markup for `text`: escaped, with a <font> tag around each run the standard font lacks."""
    parts, run, run_font = [], [], STANDARD_FONT
    for ch in text:
        font = font_for_char(ch) or BASE_FONT
        if font != run_font and run:
            parts.append(_tagged("".join(run), run_font, bold))
            run = []
        run_font = font
        run.append(ch)
    if run:
        parts.append(_tagged("".join(run), run_font, bold))
    return "".join(parts)


_BOLD_OF = {BASE_FONT: BOLD_FONT, CJK_FONT: CJK_FONT}


def _tagged(text: str, font: str, bold: bool) -> str:
    from xml.sax.saxutils import escape

    if font == STANDARD_FONT:
        return escape(text)
    font = _BOLD_OF[font] if bold else font
    load_font(font)
    return f'<font name="{font}">{escape(text)}</font>'


def _visual_lines(line: str, width: float, size: float) -> list[str]:
    """Right-to-left text wrapped to `width` in logical order, then each line shaped and reordered."""
    import arabic_reshaper
    from bidi import get_display
    from reportlab.pdfbase.pdfmetrics import stringWidth

    chunks, current = [], ""
    for word in _split_long_words(line.split(" "), width, size):
        candidate = f"{current} {word}" if current else word
        if current and stringWidth(arabic_reshaper.reshape(candidate), BASE_FONT, size) > width:
            chunks.append(current)
            candidate = word
        current = candidate
    chunks.append(current)
    return [get_display(arabic_reshaper.reshape(chunk)) for chunk in chunks]


def _split_long_words(words: list[str], width: float, size: float) -> list[str]:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    out = []
    for word in words:
        while len(word) > 1 and stringWidth(word, BASE_FONT, size) > width:
            cut = max(1, int(len(word) * width / stringWidth(word, BASE_FONT, size)) - 1)
            out.append(word[:cut])
            word = word[cut:]
        out.append(word)
    return out


@lru_cache(maxsize=4096)
def markup(text: str, *, width: float = 468.0, size: float = 9.5, bold: bool = False) -> str:
    """Paragraph markup for cleaned text: lines joined by <br/>, right-to-left lines reordered."""
    lines = []
    for line in text.split("\n"):
        visual = _visual_lines(line, width, size) if has_rtl(line) else [line]
        lines.extend(_font_runs(v, bold) for v in visual)
    return "<br/>".join(lines)
