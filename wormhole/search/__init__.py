"""OT nearest-neighbour search over a collection of clouds (see :mod:`.index`)."""

from wormhole.search.bounds import frame_sketches, lower_bounds, random_frames
from wormhole.search.candidates import BACKENDS, BruteForce, FaissHNSW, make_backend
from wormhole.search.certified import Certified, certified_nearest
from wormhole.search.dual_bounds import dual_lower_bounds
from wormhole.search.index import CloudIndex, SearchResult, check_index_target, load_index
from wormhole.search.rerank import EngineReranker, exact_distances, exact_kind

__all__ = ["BACKENDS", "BruteForce", "Certified", "CloudIndex", "EngineReranker", "FaissHNSW",
           "SearchResult", "certified_nearest", "check_index_target", "dual_lower_bounds",
           "exact_distances", "exact_kind", "frame_sketches", "load_index", "lower_bounds",
           "make_backend", "random_frames"]
