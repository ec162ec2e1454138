"""Knowledge: the regulation corpus (ingest), the embedding model and the Chroma index with its retriever.
"""
