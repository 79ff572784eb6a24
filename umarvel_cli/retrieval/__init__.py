"""faiss index build/load, shard-streaming exact search, top-k merge.

torch and faiss are imported inside the functions that need them, so importing this package is cheap.
"""

from umarvel_cli.retrieval.embeddings import EmbeddingSet, ids_in, open_embeddings
from umarvel_cli.retrieval.exact import SearchResult, chain_sets, exact_search
from umarvel_cli.retrieval.faiss_index import build_index, load_index, search_index
from umarvel_cli.retrieval.search_stage import run_search

__all__ = [
    "EmbeddingSet",
    "SearchResult",
    "build_index",
    "chain_sets",
    "exact_search",
    "ids_in",
    "load_index",
    "open_embeddings",
    "run_search",
    "search_index",
]
