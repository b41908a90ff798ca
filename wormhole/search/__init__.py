"""OT nearest-neighbour search over a collection of clouds (see :mod:`.index`)."""

from wormhole.search.candidates import BACKENDS, BruteForce, FaissHNSW, make_backend
from wormhole.search.index import CloudIndex, SearchResult, load_index
from wormhole.search.rerank import EngineReranker, exact_distances, exact_kind

__all__ = ["BACKENDS", "BruteForce", "CloudIndex", "EngineReranker", "FaissHNSW",
           "SearchResult", "exact_distances", "exact_kind", "load_index", "make_backend"]
