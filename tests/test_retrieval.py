"""The regulation knowledge base: corpus rules, Chroma index (embedded and server), decisions to citations."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.decide.decision import Citation, Decision, Reason
from lendsafe.errors import ConfigurationError
from lendsafe.knowledge.ingest import read_passages
from lendsafe.knowledge.retrieval import (KnowledgeBase, evaluate_retrieval, load_corpus, load_eval_queries,
                                queries_for_decision)

CATALOG = tomllib.loads((PROJECT_ROOT / "data" / "specs" / "reasons.toml").read_text())
SHARED_REGS = (PROJECT_ROOT / ".." / "shared" / "regs").resolve()
CITATION_FORMS = re.compile(
    r"^(12 CFR 1002\.\d+(\([a-z0-9]+\))*"
    r"|12 CFR 1002, Supp\. I, (comment \d+(\([a-z0-9]+\))*-\d+|App\. [A-Z], comment \d+)"
    r"|12 CFR 1002, App\. [A-Z](, (para\. \d+|Form [A-Z]-\d+))?"
    r"|15 U\.S\.C\. 16(81|91)[a-z]?(\([a-zA-Z0-9]+\))*(-\([a-z0-9]+\))*"
    r"|CFPB Circular 20\d\d-\d\d \(withdrawn 2025-05-12\))$")


pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lendsafe-home")


@pytest.fixture(scope="session")
def kb(home) -> KnowledgeBase:
    knowledge_base = KnowledgeBase(Settings(home=home))
    knowledge_base.ensure_index()
    return knowledge_base


def reason(code: str, contribution: float = 0.5) -> Reason:
    entry = CATALOG[code]
    return Reason(code=code, statement=entry["statement"], feature=code.lower(), value=1, display_value="1",
                  contribution=contribution, citation=entry["citation"])


def decision(codes: list[str], outcome: str = "deny") -> Decision:
    return Decision(application={}, dataset="hmda", decision=outcome, risk=0.7, threshold=0.5,
                    reference="population", reasons=tuple(reason(c) for c in codes), contributions={},
                    model={"dataset": "hmda", "sha256": "0" * 64, "threshold_version": "1"})


# ---------------------------------------------------------------------------- corpus

def test_corpus_has_the_required_size_and_fields():
    passages = load_corpus()
    assert len(passages) >= 80
    assert len({p.id for p in passages}) == len(passages)
    for p in passages:
        assert CITATION_FORMS.match(p.citation), p.citation
        assert p.title and len(p.text) >= 80 and p.source, p.id
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.effective_date), p.id


def test_corpus_covers_the_required_provisions():
    citations = {p.citation for p in load_corpus()}
    required = {
        "12 CFR 1002.9(a)(1)", "12 CFR 1002.9(a)(2)", "12 CFR 1002.9(b)(1)", "12 CFR 1002.9(b)(2)",
        "12 CFR 1002.9(c)(1)", "12 CFR 1002.9(c)(2)", "12 CFR 1002.6(b)(1)", "12 CFR 1002.6(b)(2)",
        "12 CFR 1002.6(b)(4)", "12 CFR 1002.6(b)(5)", "12 CFR 1002.2(z)", "12 CFR 1002.12(b)(1)",
        "12 CFR 1002, App. C, Form C-1", "12 CFR 1002, App. C, para. 4", "12 CFR 1002, Supp. I, App. C, comment 1",
        "15 U.S.C. 1681m(a)", "15 U.S.C. 1681m(b)(1)", "15 U.S.C. 1681g(f)(1)", "15 U.S.C. 1681j(b)",
        "15 U.S.C. 1681i(a)(1)", "15 U.S.C. 1691(d)(2)", "15 U.S.C. 1691(d)(3)",
    } | {f"12 CFR 1002, Supp. I, comment 9(b)(2)-{n}" for n in range(1, 10)}
    assert required <= citations, sorted(required - citations)


def test_every_catalog_reason_is_grounded_by_a_passage_with_its_citation():
    passages = load_corpus()
    for code, entry in CATALOG.items():
        grounding = [p for p in passages if code in p.reason_codes]
        assert grounding, f"no passage lists reason code {code}"
        assert {p.citation for p in grounding} == {entry["citation"]}, code
    tagged = {code for p in passages for code in p.reason_codes}
    assert tagged <= set(CATALOG), sorted(tagged - set(CATALOG))


def test_cited_circulars_say_they_were_withdrawn():
    circulars = [p for p in load_corpus() if "Circular" in p.citation]
    assert {p.citation[:20] for p in circulars} == {"CFPB Circular 2022-0", "CFPB Circular 2023-0"}
    for p in circulars:
        assert "withdrew" in p.text and "2025-05-12" in p.text


def _shingles(text: str, size: int = 12) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


def test_corpus_is_written_in_the_projects_own_words():
    if not SHARED_REGS.exists():
        pytest.skip(f"official regulation text not available at {SHARED_REGS}")
    official = set().union(*(_shingles(p.text) for p in read_passages(SHARED_REGS)))
    copied = [p.id for p in load_corpus() if _shingles(p.text) & official]
    assert not copied, f"passages sharing 12 consecutive words with the official text: {copied}"


# ---------------------------------------------------------------------------- index

def test_index_holds_every_passage_and_is_reused(kb, home):
    info = KnowledgeBase(Settings(home=home)).ensure_index()
    assert info["built"] is False
    assert info["count"] == len(kb.passages)
    assert info["corpus_sha256"] == kb.corpus_sha256 and len(kb.corpus_sha256) == 64
    assert str(home / "index") in info["location"]


def test_index_is_rebuilt_when_the_corpus_changes(tmp_path):
    source = tmp_path / "corpus"
    source.mkdir()
    lines = (PROJECT_ROOT / "data" / "regulations" / "reg_b.jsonl").read_text().splitlines()[:3]
    (source / "small.jsonl").write_text("\n".join(lines) + "\n")
    settings = Settings(home=tmp_path / "home")
    first = KnowledgeBase(settings, source=source).ensure_index()
    assert first["built"] and first["count"] == 3
    assert KnowledgeBase(settings, source=source).ensure_index()["built"] is False
    (source / "small.jsonl").write_text("\n".join(lines[:2]) + "\n")
    changed = KnowledgeBase(settings, source=source).ensure_index()
    assert changed["built"] and changed["count"] == 2 and changed["corpus_sha256"] != first["corpus_sha256"]
    assert KnowledgeBase(settings, source=source).ensure_index(rebuild=True)["built"] is True


# ---------------------------------------------------------------------------- search

def test_search_returns_exact_citations_with_scores(kb):
    hits = kb.search("How long does a declined applicant have to request a free copy of their credit report?")
    assert len(hits) == 4 and all(isinstance(h, Citation) for h in hits)
    assert "15 U.S.C. 1681j(b)" in [h.citation for h in hits]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    texts = {(p.citation, p.title): p.text for p in kb.passages}
    assert all(h.text == texts[(h.citation, h.title)] for h in hits)


def test_langchain_retriever_returns_documents_with_citations(kb):
    documents = kb.as_retriever(k=2).invoke("Which characteristics count as a prohibited basis?")
    assert len(documents) == 2
    assert "12 CFR 1002.2(z)" in [d.metadata["citation"] for d in documents]
    assert all(d.page_content and d.metadata["title"] for d in documents)


def test_search_rejects_bad_arguments(kb):
    with pytest.raises(ConfigurationError, match="non-empty"):
        kb.search("   ")
    with pytest.raises(ConfigurationError, match="at least 1"):
        kb.search("reasons", k=0)


def test_metadata_filter_limits_results_to_tagged_passages(kb):
    hits = kb.search("collateral", k=3, where={"reason_LOAN_TO_VALUE": True})
    assert len(hits) == 1 and hits[0].citation == CATALOG["LOAN_TO_VALUE"]["citation"]


def test_retrieval_meets_its_targets_and_beats_bm25(kb):
    report = evaluate_retrieval(kb, load_eval_queries())
    assert report["queries"] >= 60
    ours, bm25 = report["knowledge_base"], report["bm25"]
    assert ours["recall@4"] >= 0.90 and ours["mrr"] >= 0.75, ours
    assert ours["recall@4"] > bm25["recall@4"] and ours["mrr"] > bm25["mrr"]


def test_evaluation_questions_point_at_corpus_citations():
    citations = {p.citation for p in load_corpus()}
    for row in load_eval_queries():
        assert set(row["citations"]) <= citations, row


# ---------------------------------------------------------------------------- decisions

def test_queries_for_decision_cover_each_reason_then_the_notice():
    queries = queries_for_decision(decision(["DEBT_TO_INCOME", "SELF_EMPLOYMENT"]))
    assert len(queries) == 5
    assert "Excessive obligations in relation to income" in queries[0]
    assert "self-employment" in queries[1].lower()
    assert any("ECOA notice" in q for q in queries[2:]) and any("consumer report" in q for q in queries[2:])


def test_retrieve_for_decision_grounds_every_reason_first(kb):
    codes = list(CATALOG)
    for start in range(0, len(codes), 4):
        chosen = codes[start:start + 4]
        citations = kb.retrieve_for_decision(decision(chosen))
        keys = [(c.citation, c.title) for c in citations]
        assert len(keys) == len(set(keys))
        tagged = {(p.citation, p.title): set(p.reason_codes) for p in kb.passages if p.reason_codes}
        grounded = [key in tagged for key in keys]
        assert grounded == sorted(grounded, reverse=True), keys          # reason passages come first
        for code in chosen:
            assert any(code in tagged.get(key, ()) and key[0] == CATALOG[code]["citation"] for key in keys), code
        assert {"12 CFR 1002.9(b)(1)", "12 CFR 1002.9(b)(2)", "15 U.S.C. 1681m(a)"} <= {c.citation for c in citations}


def test_approval_gets_only_the_notification_deadline(kb):
    citations = kb.retrieve_for_decision(decision([], outcome="approve"))
    assert [c.citation for c in citations] == ["12 CFR 1002.9(a)(1)(i)"]


# ---------------------------------------------------------------------------- CLI

def _run_cli(argv: list[str]) -> str:
    from lendsafe.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def test_cli_index_and_retrieve(kb, home, monkeypatch):
    monkeypatch.setenv("LENDSAFE_HOME", str(home))
    printed = _run_cli(["index"])
    assert f"{len(kb.passages)} passages indexed (up to date)" in printed and str(home / "index") in printed
    rows = json.loads(_run_cli(["retrieve", "Can our scoring model use the applicant's age?", "-k", "3"]))
    assert len(rows) == 3 and set(rows[0]) == {"citation", "title", "text", "score"}
    assert "12 CFR 1002.6(b)(2)" in [r["citation"] for r in rows]


def test_cli_evaluate_retrieval_reports_bm25_beside_the_index(home, monkeypatch, tmp_path):
    monkeypatch.setenv("LENDSAFE_HOME", str(home))
    queries = tmp_path / "few.jsonl"
    queries.write_text("\n".join(json.dumps(r) for r in load_eval_queries()[:8]) + "\n")
    report = json.loads(_run_cli(["evaluate-retrieval", "--queries", str(queries)]))
    assert report["queries"] == 8
    for system in ("knowledge_base", "vector_only", "bm25"):
        assert 0 <= report[system]["recall@4"] <= 1 and 0 <= report[system]["mrr"] <= 1


# ---------------------------------------------------------------------------- Chroma server

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = _free_port()
    executable = Path(sys.executable).with_name("chroma")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    process = subprocess.Popen([str(executable), "run", "--path", str(tmp_path_factory.mktemp("chroma-server")),
                                "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"chroma server did not answer on {url}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_chroma_server_gives_the_same_answers(kb, chroma_server, tmp_path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from lendsafe.knowledge.embeddings import chroma_embedding_function

    remote = KnowledgeBase(Settings(home=tmp_path, chroma_url=chroma_server))
    info = remote.ensure_index()
    assert info["count"] == len(kb.passages) and info["location"].startswith(chroma_server)
    for row in load_eval_queries()[:10]:
        assert [h.citation for h in remote.search(row["question"])] == [h.citation for h in kb.search(row["question"])]

    port = int(chroma_server.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(remote.collection_name, embedding_function=chroma_embedding_function())
    answer = collection.query(query_texts=["ECOA notice naming the agency that supervises the creditor"], n_results=3)
    assert "12 CFR 1002.9(b)(1)" in [m["citation"] for m in answer["metadatas"][0]]
