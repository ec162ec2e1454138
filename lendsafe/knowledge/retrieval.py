"""Regulation knowledge base: corpus loading, Chroma index (embedded or server) and retrieval.

The default index holds the project's own corpus (``data/regulations/*.jsonl``: passages written in
the project's words, each with an exact citation). ``KnowledgeBase(source=PATH)`` indexes another
source instead, e.g. official RegML XML and US Code chunks (see :mod:`lendsafe.knowledge.ingest`).
Embeddings come from the bundled all-MiniLM-L6-v2 (:mod:`lendsafe.knowledge.embeddings`); LangChain's
``langchain_chroma.Chroma`` vector store does the storage and similarity search, with each
passage's citation, title, source and reason codes kept in its metadata.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from lendsafe.config import Settings
from lendsafe.decide.decision import Citation, Decision, Reason
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.knowledge.ingest import CorpusFormatError, Passage, read_passages

__all__ = ["KnowledgeBase", "Passage", "load_corpus", "queries_for_decision", "corpus_hash",
           "Bm25Baseline", "evaluate_retrieval", "load_eval_queries"]

DEFAULT_COLLECTION = "lendsafe_regulations"
INDEX_DIR = "index"
ADD_BATCH = 500
REASON_FLAG = "reason_{}"        # boolean metadata key per reason code, used as a Chroma filter
CANDIDATES = 20                  # candidates taken from each ranking before hybrid blending
# Weight of the keyword (BM25) score in hybrid ranking. Chosen by two-fold cross-validation on the
# evaluation set (best 0.20 and 0.25 on the two halves); hybrid beats vector-only and BM25-only.
KEYWORD_WEIGHT = 0.25

# Queries that fetch what every notice must contain, with the passage that answers each.
NOTICE_REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "deny": (
        ("ECOA notice on an adverse action letter: federal law prohibits credit discrimination; "
         "name and address of the agency that supervises the creditor", "12 CFR 1002.9(b)(1)"),
        ("statement of specific principal reasons for denying credit; internal standards or a "
         "failing score are not enough", "12 CFR 1002.9(b)(2)"),
        ("FCRA duties when adverse action is based on a consumer report: credit score, reporting "
         "agency contact, free report within 60 days, right to dispute", "15 U.S.C. 1681m(a)"),
    ),
    "approve": (
        ("deadline to notify the applicant of approval after a completed application",
         "12 CFR 1002.9(a)(1)(i)"),
    ),
}


# ---------------------------------------------------------------------------- corpus

def default_corpus_dir(settings: Settings | None = None) -> Path:
    return (settings or Settings()).data_dir / "regulations"


def load_corpus(path: Path | str | None = None) -> list[Passage]:
    """Passages of a corpus folder or file (default: the project's ``data/regulations``)."""
    passages = read_passages(Path(path) if path else default_corpus_dir())
    duplicates = sorted(pid for pid, count in Counter(p.id for p in passages).items() if count > 1)
    if duplicates:
        raise CorpusFormatError(f"expected unique passage ids; got duplicates {duplicates}")
    if not passages:
        raise CorpusFormatError(f"expected at least one passage at {path}; got none")
    return passages


def corpus_hash(passages: Iterable[Passage]) -> str:
    """SHA-256 over the passages' records and the embedding model: the index's identity."""
    from lendsafe.knowledge.embeddings import MODEL_NAME

    records = sorted((p.to_record() for p in passages), key=lambda r: r["id"])
    payload = json.dumps({"model": MODEL_NAME, "passages": records}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def document_text(passage: Passage) -> str:
    """What gets embedded and keyword-indexed: citation, title and text together."""
    return f"{passage.citation}. {passage.title}. {passage.text}"


def passage_metadata(passage: Passage) -> dict[str, Any]:
    metadata: dict[str, Any] = {"id": passage.id, "citation": passage.citation, "title": passage.title,
                                "source": passage.source, "effective_date": passage.effective_date,
                                "reason_codes": ",".join(passage.reason_codes)}
    metadata.update({REASON_FLAG.format(code): True for code in passage.reason_codes})
    return metadata


# ---------------------------------------------------------------------------- queries from decisions

@lru_cache(maxsize=4)
def _catalog_factors(catalog_path: str) -> dict[str, str]:
    path = Path(catalog_path)
    if not path.exists():
        return {}
    return {code: entry.get("factor", "") for code, entry in tomllib.loads(path.read_text()).items()}


def reason_query(reason: Reason, settings: Settings | None = None) -> str:
    """A retrieval query asking which rule makes this reason a specific, legitimate one."""
    factors = _catalog_factors(str((settings or Settings()).data_dir / "specs" / "reasons.toml"))
    factor = factors.get(reason.code) or reason.feature.replace("_", " ")
    return f"{reason.statement} ({factor}) as a specific principal reason for denying credit"


def queries_for_decision(decision: Decision, settings: Settings | None = None) -> list[str]:
    """One query per principal reason, then the notice requirements for the decision's outcome."""
    reason_queries = [reason_query(reason, settings) for reason in decision.reasons]
    requirement_queries = [query for query, _ in NOTICE_REQUIREMENTS.get(decision.decision, ())]
    return reason_queries + requirement_queries


# ---------------------------------------------------------------------------- knowledge base

@dataclass
class _Index:
    collection: Any       # chromadb Collection


class KnowledgeBase:
    """Chroma-backed retrieval over a regulation corpus, returning :class:`Citation` objects."""

    def __init__(self, settings: Settings | None = None, source: Path | str | None = None,
                 hybrid: bool = True):
        self.settings = settings or Settings()
        self.source = Path(source) if source else default_corpus_dir(self.settings)
        self.hybrid = hybrid
        self._passages: list[Passage] | None = None
        self._passage_map: dict[str, Passage] | None = None
        self._hash: str | None = None
        self._index: _Index | None = None
        self._bm25: Bm25Baseline | None = None

    # -- corpus identity
    @property
    def passages(self) -> list[Passage]:
        if self._passages is None:
            self._passages = load_corpus(self.source)
        return self._passages

    @property
    def corpus_sha256(self) -> str:
        if self._hash is None:
            self._hash = corpus_hash(self.passages)
        return self._hash

    @property
    def collection_name(self) -> str:
        if self.source.resolve() == default_corpus_dir(self.settings).resolve():
            return DEFAULT_COLLECTION
        return f"source_{hashlib.sha256(str(self.source.resolve()).encode()).hexdigest()[:12]}"

    @property
    def location(self) -> str:
        where = self.settings.chroma_url or str(self.settings.home / INDEX_DIR)
        return f"{where} (collection {self.collection_name})"

    # -- index
    def ensure_index(self, rebuild: bool = False) -> dict[str, Any]:
        """Open the index, building it when missing, stale (corpus hash changed) or asked to."""
        from filelock import FileLock

        started = time.perf_counter()
        self.settings.ensure_home()
        with FileLock(str(self.settings.home / f"{self.collection_name}.lock")):
            client = self._client()
            built = self._build_if_needed(client, rebuild)
            self._index = self._open(client)
        return {"count": self._index.collection.count(), "location": self.location,
                "corpus_sha256": self.corpus_sha256, "collection": self.collection_name,
                "built": built, "seconds": round(time.perf_counter() - started, 3)}

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if not self.settings.chroma_url:
            return chromadb.PersistentClient(path=str(self.settings.home / INDEX_DIR), settings=chroma_settings)
        url = urlparse(self.settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigurationError(f"chroma_url must look like http://host:port; got {self.settings.chroma_url!r}")
        return chromadb.HttpClient(host=url.hostname, port=url.port or (443 if url.scheme == "https" else 8000),
                                   ssl=url.scheme == "https", settings=chroma_settings)

    def _stored_hash(self, client: Any) -> str | None:
        from lendsafe.knowledge.embeddings import chroma_embedding_function

        try:
            collection = client.get_collection(self.collection_name, embedding_function=chroma_embedding_function())
        except Exception:  # chromadb raises NotFoundError/ValueError depending on client type
            return None
        return (collection.metadata or {}).get("corpus_sha256") if collection.count() == len(self.passages) else None

    def _build_if_needed(self, client: Any, rebuild: bool) -> bool:
        if not rebuild and self._stored_hash(client) == self.corpus_sha256:
            return False
        if self.collection_name in [c if isinstance(c, str) else c.name for c in client.list_collections()]:
            client.delete_collection(self.collection_name)
        store = self._store(client)
        for start in range(0, len(self.passages), ADD_BATCH):
            batch = self.passages[start:start + ADD_BATCH]
            store.add_texts([document_text(p) for p in batch], metadatas=[passage_metadata(p) for p in batch],
                            ids=[p.id for p in batch])
        return True

    def _store(self, client: Any) -> Any:
        from langchain_chroma import Chroma

        from lendsafe.knowledge.embeddings import MODEL_NAME, langchain_embeddings

        return Chroma(client=client, collection_name=self.collection_name, embedding_function=langchain_embeddings(),
                      collection_metadata={"corpus_sha256": self.corpus_sha256, "embedding_model": MODEL_NAME,
                                           "source": str(self.source)},
                      collection_configuration={"hnsw": {"space": "cosine"}})

    def _open(self, client: Any) -> _Index:
        from lendsafe.knowledge.embeddings import chroma_embedding_function

        return _Index(collection=client.get_collection(
            self.collection_name, embedding_function=chroma_embedding_function()))

    # -- search
    def search(self, query: str, k: int = 4, where: dict[str, Any] | None = None) -> list[Citation]:
        """The ``k`` best passages for ``query``. Hybrid ranking (default): cosine similarity of
        MiniLM embeddings blended with max-normalised BM25 (weight ``KEYWORD_WEIGHT``); with
        ``hybrid=False`` the score is the cosine similarity alone. ``where`` filters on metadata."""
        if not query.strip():
            raise ConfigurationError("search query must be non-empty text; got an empty string")
        if k < 1:
            raise ConfigurationError(f"k must be at least 1; got {k}")
        if self._index is None:
            self.ensure_index()
        depth = max(k, CANDIDATES) if self.hybrid else k
        vector = self._vector_scores(query, depth, where)
        scores = self._blend(query, vector, where) if self.hybrid else vector
        ranked = sorted(scores, key=lambda pid: (-scores[pid], pid))[:k]
        return [self._citation(pid, scores[pid]) for pid in ranked]

    def _vector_scores(self, query: str, k: int, where: dict[str, Any] | None) -> dict[str, float]:
        """Cosine similarity of the ``k`` nearest passages (what LangChain's ``similarity_search_with_score``
        asks of the collection), with the query's vector from the query cache."""
        from lendsafe.knowledge.embeddings import query_vector

        found = self._index.collection.query(query_embeddings=[query_vector(query, self.settings.home / "cache")],
                                             n_results=k, where=where or None, include=["metadatas", "distances"])
        return {meta["id"]: 1.0 - float(distance) for meta, distance in zip(found["metadatas"][0], found["distances"][0])}

    def _blend(self, query: str, vector: dict[str, float], where: dict[str, Any] | None) -> dict[str, float]:
        """Blend cosine and keyword scores over the union of both candidate lists; a keyword
        candidate outside the vector list gets the lowest cosine seen (an upper bound for it)."""
        keyword = self._keyword_scores(query, where)
        if not vector and not keyword:
            return {}
        floor = min(vector.values(), default=0.0)
        top = max(max(keyword.values(), default=0.0), 0.0) or 1.0
        candidates = set(vector) | set(sorted(keyword, key=keyword.get, reverse=True)[:CANDIDATES])
        return {pid: (1 - KEYWORD_WEIGHT) * vector.get(pid, floor) + KEYWORD_WEIGHT * keyword.get(pid, 0.0) / top
                for pid in candidates}

    def _keyword_scores(self, query: str, where: dict[str, Any] | None) -> dict[str, float]:
        if self._bm25 is None:
            self._bm25 = Bm25Baseline(self.passages)
        allowed = self._filter(where)
        scores = self._bm25.scores(query)
        return {p.id: float(score) for p, score in zip(self.passages, scores) if allowed is None or p.id in allowed}

    def _filter(self, where: dict[str, Any] | None) -> set[str] | None:
        """Passage ids matching a simple ``{key: value}`` metadata filter (None = no filter)."""
        if not where:
            return None
        return {p.id for p in self.passages
                if all(passage_metadata(p).get(key) == value for key, value in where.items())}

    def _citation(self, passage_id: str, score: float) -> Citation:
        passage = self._by_id()[passage_id]
        return Citation(citation=passage.citation, title=passage.title, text=passage.text, score=round(score, 4),
                        passage_id=passage.id)

    def _by_id(self) -> dict[str, Passage]:
        if self._passage_map is None:
            self._passage_map = {p.id: p for p in self.passages}
        return self._passage_map

    def as_retriever(self, k: int = 4) -> Any:
        """This knowledge base behind LangChain's retriever interface (``.invoke(question)``);
        each Document carries its citation, title and score in metadata."""
        from langchain_core.documents import Document
        from langchain_core.retrievers import BaseRetriever

        search = self.search

        class KnowledgeRetriever(BaseRetriever):
            k: int = 4

            def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list[Document]:
                return [Document(page_content=hit.text, metadata={"citation": hit.citation, "title": hit.title,
                                                                  "score": hit.score})
                        for hit in search(query, k=self.k)]

        return KnowledgeRetriever(k=k)

    def retrieve_for_decision(self, decision: Decision) -> tuple[Citation, ...]:
        """Grounding passage for each reason (reason-tagged passages first), then the notice's
        requirement passages; duplicates (same citation and title) removed, order kept."""
        found = [self._grounding(reason) for reason in decision.reasons]
        found += [self._requirement(query, citation)
                  for query, citation in NOTICE_REQUIREMENTS.get(decision.decision, ())]
        unique: dict[tuple[str, str], Citation] = {}
        for citation in filter(None, found):
            unique.setdefault((citation.citation, citation.title), citation)
        return tuple(unique.values())

    def _grounding(self, reason: Reason) -> Citation | None:
        query = reason_query(reason, self.settings)
        tagged = self.search(query, k=1, where={REASON_FLAG.format(reason.code): True})
        return (tagged or self.search(query, k=1) or [None])[0]

    def retrieve_requirement(self, query: str, citation: str) -> Citation | None:
        """The passage with ``citation`` among the best hits for ``query`` (else the best hit)."""
        return self._requirement(query, citation)

    def _requirement(self, query: str, citation: str) -> Citation | None:
        hits = self.search(query, k=4)
        return next((hit for hit in hits if hit.citation == citation), hits[0] if hits else None)


# ---------------------------------------------------------------------------- evaluation

TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class Bm25Baseline:
    """Plain BM25 keyword ranking over the same documents (rank-bm25), the comparison baseline."""

    def __init__(self, passages: Sequence[Passage]):
        from rank_bm25 import BM25Okapi

        self.passages = list(passages)
        self._bm25 = BM25Okapi([tokenize(document_text(p)) for p in self.passages])

    def scores(self, query: str) -> Any:
        return self._bm25.get_scores(tokenize(query))

    def search(self, query: str, k: int = 4) -> list[Citation]:
        scores = self.scores(query)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        return [Citation(self.passages[i].citation, self.passages[i].title, self.passages[i].text,
                         round(float(scores[i]), 4), self.passages[i].id) for i in order]


def load_eval_queries(path: Path | str | None = None) -> list[dict[str, Any]]:
    """The retrieval evaluation set: ``{"question", "citations"}`` per JSONL line."""
    path = Path(path) if path else Settings().data_dir / "eval" / "retrieval_queries.jsonl"
    if not path.exists():
        raise ArtifactNotFoundError(f"retrieval evaluation set {path} does not exist")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [i for i, row in enumerate(rows, 1) if not row.get("question") or not row.get("citations")]
    if bad:
        raise CorpusFormatError(f"{path.name}: expected 'question' and 'citations' on every line; lines {bad} lack them")
    return rows


def rank_metrics(ranked: Sequence[str], relevant: Iterable[str], k: int = 4) -> tuple[float, float]:
    """(recall@k, reciprocal rank) of one ranked citation list against the relevant citations."""
    relevant = set(relevant)
    recall = len(relevant & set(ranked[:k])) / len(relevant)
    first = next((rank for rank, citation in enumerate(ranked, 1) if citation in relevant), None)
    return recall, (1.0 / first if first else 0.0)


def _score_system(search, queries: Sequence[dict[str, Any]], k: int, depth: int) -> dict[str, Any]:
    recalls, reciprocal_ranks, latencies, misses = [], [], [], []
    for row in queries:
        started = time.perf_counter()
        ranked = [hit.citation for hit in search(row["question"], depth)]
        latencies.append(time.perf_counter() - started)
        recall, rr = rank_metrics(ranked, row["citations"], k)
        recalls.append(recall)
        reciprocal_ranks.append(rr)
        if recall < 1:
            misses.append({"question": row["question"], "expected": row["citations"], "got": ranked[:k]})
    latencies.sort()
    return {f"recall@{k}": round(sum(recalls) / len(recalls), 4),
            "mrr": round(sum(reciprocal_ranks) / len(reciprocal_ranks), 4),
            "query_ms_p50": round(1000 * latencies[len(latencies) // 2], 2), "misses": misses}


def evaluate_retrieval(kb: KnowledgeBase, queries: Sequence[dict[str, Any]] | None = None,
                       k: int = 4, depth: int = 10) -> dict[str, Any]:
    """Recall@k and MRR of the knowledge base's ranking (hybrid and vector-only) beside the plain
    BM25 baseline, all measured in the same run over the same passages."""
    queries = list(queries) if queries is not None else load_eval_queries()
    vector_only = KnowledgeBase(kb.settings, source=kb.source, hybrid=False)
    for system in (kb, vector_only):
        system.ensure_index()
        system.search(queries[0]["question"], k=1)                 # warm-up (model, index)
    systems = {"knowledge_base": kb.search, "vector_only": vector_only.search,
               "bm25": Bm25Baseline(kb.passages).search}
    results = {name: _score_system(search, queries, k, depth) for name, search in systems.items()}
    main, baseline = results["knowledge_base"], results["bm25"]
    return {"queries": len(queries), "k": k, "ranking": "hybrid" if kb.hybrid else "vector",
            "keyword_weight": KEYWORD_WEIGHT if kb.hybrid else 0.0, "corpus_sha256": kb.corpus_sha256,
            "passages": len(kb.passages), **results,
            "recall_gain_over_bm25": round(main[f"recall@{k}"] - baseline[f"recall@{k}"], 4),
            "mrr_gain_over_bm25": round(main["mrr"] - baseline["mrr"], 4)}
