"""Turn regulation sources into citable passages.

Three formats are read:

* the project's own corpus: JSONL lines ``{"id", "citation", "title", "text", "source",
  "effective_date", "reason_codes"?}`` (``data/regulations/*.jsonl``);
* official RegML XML (eCFR "eregs" schema, e.g. Regulation B, 12 CFR part 1002): one passage per
  labelled paragraph, citation derived from the label (``1002-9-b-2-Interp-1`` ->
  ``12 CFR 1002, Supp. I, comment 9(b)(2)-1``);
* US Code JSON chunks (``[{"section", "heading", "subsection", "text"}]``): one passage per
  lettered/numbered paragraph, citation from the markers (``15 U.S.C. 1681m(a)(2)``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from lendsafe.errors import ArtifactNotFoundError, LendSafeError

EREGS_NS = "{eregs}"
MAX_PASSAGE_CHARS = 1500   # longer paragraphs are split with a LangChain text splitter
MIN_PASSAGE_CHARS = 25     # shorter texts (form blanks, lead-ins such as "means") only prefix their children
MAX_LEAD_IN_CHARS = 300    # a parent's text up to this length is repeated in front of each child
ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv",
         "xv", "xvi", "xvii", "xviii", "xix", "xx")


class CorpusFormatError(LendSafeError, ValueError):
    """A corpus file does not have the shape this module reads."""


@dataclass(frozen=True)
class Passage:
    """One citable piece of regulation text."""

    citation: str
    text: str
    title: str = ""
    source: str = ""
    effective_date: str = ""
    reason_codes: tuple[str, ...] = ()
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason_codes", tuple(self.reason_codes))
        if not self.id:
            object.__setattr__(self, "id", slug(f"{self.citation} {self.title}"))

    def to_record(self) -> dict[str, Any]:
        """The JSONL form (also what the corpus hash is computed over)."""
        record = {"id": self.id, "citation": self.citation, "title": self.title, "text": self.text,
                  "source": self.source, "effective_date": self.effective_date}
        if self.reason_codes:
            record["reason_codes"] = list(self.reason_codes)
        return record


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------------------- project JSONL

REQUIRED_FIELDS = ("citation", "title", "text", "source", "effective_date")


def read_jsonl(path: Path) -> list[Passage]:
    """Passages of one project-corpus JSONL file; every line must carry the required fields."""
    passages = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        missing = [name for name in REQUIRED_FIELDS if not str(record.get(name, "")).strip()]
        if missing:
            raise CorpusFormatError(f"{path.name}:{number}: expected fields {REQUIRED_FIELDS}; missing {missing}")
        passages.append(Passage(**{k: record[k] for k in (*REQUIRED_FIELDS, "id") if k in record},
                                reason_codes=tuple(record.get("reason_codes", ()))))
    return passages


# ---------------------------------------------------------------------------- RegML XML

def label_citation(label: str, appendix_form: str = "") -> str:
    """Citation for a RegML label: section paragraphs, Supplement I comments and appendices."""
    part, _, rest = label.partition("-")
    pieces = rest.split("-") if rest else []
    if "Interp" in pieces:
        return _interp_citation(part, pieces)
    if pieces and pieces[0].isdigit():
        return f"12 CFR {part}.{pieces[0]}" + "".join(f"({p})" for p in pieces[1:])
    if pieces and re.fullmatch(r"[A-Z]{1,2}", pieces[0]):
        return _appendix_citation(part, pieces, appendix_form)
    return f"12 CFR {part}"


def _interp_citation(part: str, pieces: list[str]) -> str:
    at = pieces.index("Interp")
    target, after = pieces[:at], pieces[at + 1:]
    number = after[0] + "".join(f".{p}" for p in after[1:]) if after and after[0].isdigit() else ""
    base = f"12 CFR {part}, Supp. I"
    if not target:
        return base
    if re.fullmatch(r"[A-Z]{1,2}", target[0]):
        return f"{base}, App. {target[0]}" + (f", comment {number}" if number else "")
    anchor = target[0] + "".join(f"({p})" for p in target[1:])
    return f"{base}, comment {anchor}" + (f"-{number}" if number else "")


def _appendix_citation(part: str, pieces: list[str], appendix_form: str) -> str:
    base = f"12 CFR {part}, App. {pieces[0]}"
    if appendix_form:
        return f"{base}, {appendix_form}"
    if len(pieces) > 1 and pieces[1].isdigit():
        return f"{base}, para. {pieces[1]}"
    return base


def _element_text(element) -> str:
    """All text inside an element (refs, defs, dashes flattened), whitespace normalised."""
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip()


def read_regml(path: Path) -> list[Passage]:
    """One passage per labelled paragraph that has its own text."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    effective_date, document = (root.find(f".//{EREGS_NS}{name}") for name in ("effectiveDate", "documentNumber"))
    effective = _element_text(effective_date) if effective_date is not None else ""
    source = f"RegML {path.name}" + (f" (FR doc. {_element_text(document)})" if document is not None else "")
    state = {"form": "", "appendix": "", "headings": [], "leads": []}
    passages: list[Passage] = []
    _walk_regml(root, state, passages, source, effective)
    return passages


PARAGRAPH_TAGS = {f"{EREGS_NS}paragraph", f"{EREGS_NS}interpParagraph"}
HEADED_TAGS = {f"{EREGS_NS}section": "subject", f"{EREGS_NS}appendixSection": "subject",
               f"{EREGS_NS}interpSection": "title", f"{EREGS_NS}appendix": "appendixTitle",
               f"{EREGS_NS}paragraph": "title", f"{EREGS_NS}interpParagraph": "title"}


def _walk_regml(element, state: dict, passages: list[Passage], source: str, effective: str) -> None:
    for child in element:
        is_appendix = child.tag == f"{EREGS_NS}appendix"
        if is_appendix:
            state["form"], state["appendix"] = "", child.get("appendixLetter", "")
        heading = _heading(child)
        form = re.match(r"Form ([A-Z]+-\d+)", heading)
        if form and state["appendix"]:
            state["form"] = f"Form {form.group(1)}"
        if heading:
            state["headings"].append(heading)
        is_paragraph = child.tag in PARAGRAPH_TAGS and bool(child.get("label"))
        if is_paragraph:
            passages.extend(_paragraph_passages(child, state, source, effective))
            state["leads"].append(_lead_in(child))
        _walk_regml(child, state, passages, source, effective)
        if is_paragraph:
            state["leads"].pop()
        if heading:
            state["headings"].pop()
        if is_appendix:
            state["form"], state["appendix"] = "", ""


def _heading(element) -> str:
    name = HEADED_TAGS.get(element.tag)
    found = element.find(f"{EREGS_NS}{name}") if name else None
    return _element_text(found).rstrip(".") if found is not None else ""


def _own_text(element) -> str:
    content = element.find(f"{EREGS_NS}content")
    return _element_text(content) if content is not None else ""


def _lead_in(element) -> str:
    """A paragraph's text when it is short enough to repeat in front of its sub-paragraphs."""
    text = _own_text(element)
    return text if len(text) <= MAX_LEAD_IN_CHARS else ""


def _paragraph_passages(element, state: dict, source: str, effective: str) -> list[Passage]:
    own = _own_text(element)
    if len(own.strip("_-:[]. ")) < MIN_PASSAGE_CHARS:      # form blanks such as "Date:" or "Name:"
        return []
    text = " ".join([*filter(None, state["leads"]), own])
    label = element.get("label")
    citation = label_citation(label, state["form"])
    title = " > ".join(dict.fromkeys(_relevant_headings(state["headings"])))
    return [Passage(citation=citation, text=piece, title=title, source=source, effective_date=effective,
                    id=f"{label}-{index}" if index else label)
            for index, piece in enumerate(split_long(text))]


def _relevant_headings(headings: list[str]) -> list[str]:
    """Drop headings of earlier appendix parts once a sample form's own heading is open."""
    forms = [i for i, heading in enumerate(headings) if re.match(r"Form [A-Z]+-\d", heading)]
    return [headings[0], *headings[forms[-1]:]] if forms and forms[-1] > 0 else headings


def split_long(text: str) -> list[str]:
    """Split a paragraph longer than MAX_PASSAGE_CHARS at sentence boundaries (LangChain splitter)."""
    if len(text) <= MAX_PASSAGE_CHARS:
        return [text]
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=MAX_PASSAGE_CHARS, chunk_overlap=150,
                                              separators=["\n\n", "\n", "; ", ". ", " "])
    return splitter.split_text(text)


# ---------------------------------------------------------------------------- US Code JSON chunks

MARKER = re.compile(r"^\(([A-Za-z0-9]{1,5})\)\s*(.*)$", re.S)
LEVEL_KINDS: tuple[tuple[str, Callable[[str], bool], Callable[[str], int]], ...] = (
    ("lower", lambda m: bool(re.fullmatch(r"[a-z]{1,2}", m)), lambda m: (ord(m[0]) - 96) + 26 * (len(m) - 1)),
    ("digit", str.isdigit, int),
    ("upper", lambda m: bool(re.fullmatch(r"[A-Z]{1,2}", m)), lambda m: (ord(m[0]) - 64) + 26 * (len(m) - 1)),
    ("roman", lambda m: m in ROMAN, lambda m: ROMAN.index(m) + 1),
    ("ROMAN", lambda m: m.lower() in ROMAN and m.isupper(), lambda m: ROMAN.index(m.lower()) + 1),
)


def marker_level(marker: str, stack: list[tuple[int, str]]) -> int | None:
    """Depth of a paragraph marker given the open markers. A first item (1, A, i, I) opens the level
    right below the last marker; any other item continues the level whose last ordinal it follows
    (so "(i)" after "(h)" is a letter, while "(i)" after "(A)" is a roman numeral)."""
    candidates = [depth for depth, (_, matches, _) in enumerate(LEVEL_KINDS) if matches(marker)]
    below_last = stack[-1][0] + 1 if stack else 0
    for depth in candidates:
        if depth == below_last and LEVEL_KINDS[depth][2](marker) == 1:
            return depth
    for depth in sorted(candidates, reverse=True):
        open_at_depth = [m for d, m in stack if d == depth]
        if open_at_depth and LEVEL_KINDS[depth][2](open_at_depth[-1]) + 1 == LEVEL_KINDS[depth][2](marker):
            return depth
    return candidates[0] if candidates else None


def read_usc_chunks(path: Path) -> list[Passage]:
    """Passages from US Code JSON chunks (one chunk = one section or subsection in markdown)."""
    chunks = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(chunks, list) or not all(isinstance(c, dict) and "section" in c for c in chunks):
        raise CorpusFormatError(f"{path.name}: expected a JSON list of chunks with 'section'; got another shape")
    passages: list[Passage] = []
    for chunk in chunks:
        passages.extend(_chunk_passages(chunk, source=f"15 U.S.C. (uscode chunks {path.name})"))
    return passages


def _chunk_passages(chunk: dict, source: str) -> Iterator[Passage]:
    section, heading = chunk["section"], chunk.get("heading", "")
    stack: list[tuple[int, str]] = []
    titles: dict[int, str] = {}
    leads: dict[int, str] = {}
    for marker, title, body in _marked_groups(chunk["text"]):
        depth = marker_level(marker, stack) if marker else -1
        if marker:
            stack = [(d, m) for d, m in stack if d < depth] + [(depth, marker)]
        titles = {d: t for d, t in titles.items() if d < depth} | ({depth: title} if title else {})
        leads = {d: t for d, t in leads.items() if d < depth}
        context = " ".join(leads.values())
        leads[depth] = body if len(body) <= MAX_LEAD_IN_CHARS else ""
        if len(body) < MIN_PASSAGE_CHARS:
            continue
        citation = f"15 U.S.C. {section}" + "".join(f"({m})" for _, m in stack)
        full_title = " > ".join([f"§ {section} {heading}".strip(), *titles.values()])
        for index, piece in enumerate(split_long(f"{context} {body}".strip())):
            yield Passage(citation=citation, text=piece, title=full_title, source=source,
                          id=slug(f"{citation}-{index}-{body[:40]}"))


def _marked_groups(text: str) -> Iterator[tuple[str, str, str]]:
    """(marker, heading, body) per marked paragraph; unmarked paragraphs join the body before them.
    Markdown headings carry a marker and a heading; a short unpunctuated first line is a heading too."""
    marker, title, parts = "", "", []
    text = re.sub(r"^(#+[^\n]*)$", "\n\\1\n", text, flags=re.M)
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()):
        from_markdown = paragraph.startswith("#")
        line = paragraph.lstrip("#").strip() if from_markdown else paragraph
        match = MARKER.match(line)
        match = match if match and any(matches(match.group(1)) for _, matches, _ in LEVEL_KINDS) else None
        if from_markdown and not match:
            continue
        if not match:
            parts.append(paragraph)
            continue
        if marker or parts:
            yield _with_heading(marker, title, parts)
        marker, rest = match.group(1), _clean_heading(match.group(2))
        title, parts = (rest, []) if from_markdown else ("", [rest])
    if marker or parts:
        yield _with_heading(marker, title, parts)


def _with_heading(marker: str, title: str, parts: list[str]) -> tuple[str, str, str]:
    """Treat a short first line without closing punctuation as the paragraph's heading."""
    first = parts[0] if parts else ""
    if not title and len(parts) > 1 and len(first) < 90 and not first.endswith((";", ":", ",", "—")) \
            and first[:1].isupper() and not first.startswith("The term"):
        return marker, first.rstrip("."), "\n".join(parts[1:])
    return marker, title, "\n".join(parts)


def _clean_heading(text: str) -> str:
    return re.sub(r"\s+\.$", "", text.strip())


# ---------------------------------------------------------------------------- dispatch

READERS: dict[str, Callable[[Path], list[Passage]]] = {
    ".jsonl": read_jsonl,
    ".xml": read_regml,
    ".json": read_usc_chunks,
}


def source_files(path: Path) -> list[Path]:
    """The readable files at a path (a file, or a folder's files in name order)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactNotFoundError(f"regulation source {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix in READERS) if path.is_dir() else [path]
    unknown = [p.name for p in files if p.suffix not in READERS]
    if unknown or not files:
        raise CorpusFormatError(f"expected {sorted(READERS)} files at {path}; got {unknown or 'none'}")
    return files


def read_passages(path: Path) -> list[Passage]:
    """Every passage of every readable file at ``path``, in file order. Official sources get
    numbered ids where a label repeats; the project's own ids are kept as written."""
    passages: list[Passage] = []
    for file in source_files(path):
        read = READERS[file.suffix](file)
        passages.extend(read if file.suffix == ".jsonl" else unique_ids(read))   # project ids must be unique
    return passages


def unique_ids(passages: Iterable[Passage]) -> list[Passage]:
    """Give repeated ids a numeric suffix so every passage can be stored under its own id."""
    seen: dict[str, int] = {}
    result = []
    for passage in passages:
        count = seen.get(passage.id, 0)
        seen[passage.id] = count + 1
        result.append(passage if not count else Passage(**{**passage.__dict__, "id": f"{passage.id}-{count}"}))
    return result
