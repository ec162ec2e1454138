"""Regulation knowledge base: corpus loading, Chroma index (embedded or server) and retrieval.

The default index holds the project's own corpus (``data/regulations/*.jsonl``: passages written in
the project's words, each with an exact citation). ``KnowledgeBase(source=PATH)`` indexes another
source instead, e.g. official RegML XML and US Code chunks (see :mod:`lendsafe.ingest`).
Embeddings come from the bundled all-MiniLM-L6-v2 (:mod:`lendsafe.embeddings`); LangChain's
``langchain_chroma.Chroma`` vector store does the storage and similarity search, with each
passage's citation, title, source and reason codes kept in its metadata.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from lendsafe.config import Settings
from lendsafe.decision import Citation, Decision, Reason
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.ingest import CorpusFormatError, Passage, read_passages

__all__ = ["KnowledgeBase", "Passage", "load_corpus", "queries_for_decision", "corpus_hash",
           "Bm25Baseline", "evaluate_retrieval", "load_eval_queries"]

DEFAULT_COLLECTION = "lendsafe_regulations"
INDEX_DIR = "index"
ADD_BATCH = 500
REASON_FLAG = "reason_{}"        # boolean metadata key per reason code, used as a Chroma filter

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
    duplicates = sorted({p.id for p in passages if [q.id for q in passages].count(p.id) > 1})
    if duplicates:
        raise CorpusFormatError(f"expected unique passage ids; got duplicates {duplicates}")
    if not passages:
        raise CorpusFormatError(f"expected at least one passage at {path}; got none")
    return passages


def corpus_hash(passages: Iterable[Passage]) -> str:
    """SHA-256 over the passages' records and the embedding model: the index's identity."""
    from lendsafe.embeddings import MODEL_NAME

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
    store: Any            # langchain_chroma.Chroma
    collection: Any       # chromadb Collection


class KnowledgeBase:
    """Chroma-backed retrieval over a regulation corpus, returning :class:`Citation` objects."""

    def __init__(self, settings: Settings | None = None, source: Path | str | None = None):
        self.settings = settings or Settings()
        self.source = Path(source) if source else default_corpus_dir(self.settings)
        self._passages: list[Passage] | None = None
        self._hash: str | None = None
        self._index: _Index | None = None

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
        from lendsafe.embeddings import chroma_embedding_function

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

        from lendsafe.embeddings import MODEL_NAME, langchain_embeddings

        return Chroma(client=client, collection_name=self.collection_name, embedding_function=langchain_embeddings(),
                      collection_metadata={"corpus_sha256": self.corpus_sha256, "embedding_model": MODEL_NAME,
                                           "source": str(self.source)},
                      collection_configuration={"hnsw": {"space": "cosine"}})

    def _open(self, client: Any) -> _Index:
        from lendsafe.embeddings import chroma_embedding_function

        store = self._store(client)
        return _Index(store=store, collection=client.get_collection(
            self.collection_name, embedding_function=chroma_embedding_function()))

    # -- search
    def search(self, query: str, k: int = 4, where: dict[str, Any] | None = None) -> list[Citation]:
        """The ``k`` passages closest in meaning to ``query``; score = cosine similarity."""
        if not query.strip():
            raise ConfigurationError("search query must be non-empty text; got an empty string")
        if k < 1:
            raise ConfigurationError(f"k must be at least 1; got {k}")
        if self._index is None:
            self.ensure_index()
        hits = self._index.store.similarity_search_with_score(query, k=k, filter=where)
        return [Citation(citation=doc.metadata["citation"], title=doc.metadata["title"],
                         text=self._text_of(doc.metadata["id"]), score=round(1.0 - float(distance), 4))
                for doc, distance in hits]

    def _text_of(self, passage_id: str) -> str:
        if not hasattr(self, "_by_id"):
            self._by_id = {p.id: p.text for p in self.passages}
        return self._by_id[passage_id]

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

    def search(self, query: str, k: int = 4) -> list[Citation]:
        scores = self._bm25.get_scores(tokenize(query))
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        return [Citation(self.passages[i].citation, self.passages[i].title, self.passages[i].text,
                         round(float(scores[i]), 4)) for i in order]


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
    """Recall@k and MRR of the vector index beside the BM25 baseline, measured in the same run."""
    queries = list(queries) if queries is not None else load_eval_queries()
    kb.ensure_index()
    kb.search(queries[0]["question"], k=1)                       # warm-up (model, index)
    vector = _score_system(kb.search, queries, k, depth)
    bm25 = _score_system(Bm25Baseline(kb.passages).search, queries, k, depth)
    return {"queries": len(queries), "k": k, "corpus_sha256": kb.corpus_sha256, "passages": len(kb.passages),
            "vector": vector, "bm25": bm25,
            "recall_gain": round(vector[f"recall@{k}"] - bm25[f"recall@{k}"], 4),
            "mrr_gain": round(vector["mrr"] - bm25["mrr"], 4)}
