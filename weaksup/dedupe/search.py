"""Exact Hamming-radius search over 64-bit frame codes by multi-index hashing.

De-duplication compares every informative frame of every source video with every
frame code of the target benchmarks, at a small Hamming radius (re-encoding and
rescaling flip a few census bits). A full popcount scan (:func:`brute_force`) costs
O(targets) per query frame; multi-index hashing (Norouzi, Punjani & Fleet, "Fast
Search in Hamming Space with Multi-Index Hashing", CVPR 2012) makes it sub-linear
and still exact:

* the 64-bit code is split into ``m`` substrings (default 4 x 16 bits); each substring
  gets a table of the code rows sorted by that substring's value, so the rows holding
  one value are one contiguous range (``np.searchsorted`` bounds; for substrings of at
  most 22 bits the bounds of every value are precomputed, one array read per probe);
* pigeonhole: if two codes differ in at most ``r`` bits, at least one of the ``m``
  substrings differs in at most ``rho = r // m`` bits. So probing, per substring,
  every value within Hamming distance ``rho`` of the query's substring (``rho = 1``:
  1 + 16 = 17 probes) finds every code within radius ``m * (rho + 1) - 1`` (7 for 4 x 16
  bits), with no miss;
* candidates are verified with the full popcount, and a pair found through several
  substrings is kept only from the first substring that can find it, so the answer
  is exactly brute force's, without a sort to de-duplicate.

Everything is vectorised over all query codes at once, in chunks that bound memory.
With 16-bit substrings and random codes a query meets about ``68 * N / 65536``
candidates, so the cost grows with N far slower than a scan (1k -> 1M targets: ~13x,
against 1000x for :func:`brute_force`; ``benchmarks/search_bench.py``). Fewer, wider
substrings (m=3 at 1M codes, as the MIH paper's ``m ~ 64 / log2 N`` suggests) need
~10x more probes at radius 7 and measured slower here, so 4 x 16 bits is the default.

``datasketch`` was considered and not used: its LSH indexes (MinHash LSH, LSH Forest,
LSH Ensemble) estimate Jaccard similarity of *sets*; they have no Hamming-space index
and are approximate (they can miss), where this search must be exact.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

DEFAULT_SUBSTRINGS = 4
DENSE_BITS = 22  # substrings up to this width get a precomputed value -> range table
CANDIDATE_BUDGET = 1 << 21  # candidates per query chunk (working arrays ~40 MB)
SWEEP_BYTES = 1 << 22  # tables larger than this are probed in value order


def _probe_masks(width: int, rho: int) -> np.ndarray:
    """All ``width``-bit values of popcount <= rho: XORed with a substring, its probes."""
    masks = [0]
    for k in range(1, min(rho, width) + 1):
        for bits in combinations(range(width), k):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.uint64)


class HammingIndex:
    """Exact radius search over uint64 codes (multi-index hashing; see the module docstring).

    ``build(codes)`` once, then ``query(q, radius)`` for any number of query codes.
    Results are the (query row, target row, distance) triples with distance <= radius,
    sorted by query then target row, identical to :func:`brute_force`.

    Per substring the index keeps the rows in substring order, the range bounds, and a
    32-bit "check" word per row (32 code bits outside the substring): candidates are
    first screened on the check word (half the memory traffic of the full code; a random
    candidate passes with probability ~1e-3), and only survivors read the full code.
    """

    def __init__(self, substrings: int = DEFAULT_SUBSTRINGS) -> None:
        if not 2 <= substrings <= 64:
            raise ValueError(f"substrings must be within 2..64, got {substrings}")
        self.m = substrings
        base, extra = divmod(64, substrings)
        widths = [base + (1 if s < extra else 0) for s in range(substrings)]
        shifts = np.cumsum([0] + widths[:-1])
        self._parts = [(int(sh), int(w)) for sh, w in zip(shifts, widths)]
        self.codes = np.empty(0, np.uint64)
        self._order: list[np.ndarray] = []  # rows sorted by substring value
        self._check: list[np.ndarray] = []  # uint32 screening word of each sorted row
        self._bounds: list[np.ndarray] = []  # dense: value -> range start (2**w + 1); sparse: sorted values
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.codes)

    @staticmethod
    def _substring(codes: np.ndarray, shift: int, width: int) -> np.ndarray:
        return (codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)

    @staticmethod
    def _check_word(codes: np.ndarray, shift: int, width: int) -> np.ndarray:
        """The 32 code bits just above substring (shift, width), cyclically: never its own bits."""
        k = (shift + width) % 64
        rotated = codes if k == 0 else (codes >> np.uint64(k)) | (codes << np.uint64(64 - k))
        return (rotated & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    def build(self, codes: np.ndarray) -> "HammingIndex":
        """Index ``codes`` (any shape, flattened; row k = flat position k)."""
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64).ravel()
        n = len(self.codes)
        row_type = np.int32 if n < 2**31 else np.int64
        self._order, self._check, self._bounds = [], [], []
        for shift, width in self._parts:
            sub = self._substring(self.codes, shift, width)
            order = np.argsort(sub, kind="stable").astype(row_type)
            values = sub[order]
            self._order.append(order)
            self._check.append(self._check_word(self.codes[order], shift, width))
            if width <= DENSE_BITS:
                starts = np.searchsorted(values, np.arange((1 << width) + 1, dtype=np.uint64))
                self._bounds.append(starts.astype(row_type))
            else:
                self._bounds.append(values)
        return self

    def _masks_for(self, width: int, rho: int) -> np.ndarray:
        key = (width, rho)
        if key not in self._masks:
            self._masks[key] = _probe_masks(width, rho)
        return self._masks[key]

    def _ranges(self, s: int, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and length of the sorted range of every probe value of substring ``s``."""
        bounds = self._bounds[s]
        if self._parts[s][1] <= DENSE_BITS:
            idx = probes.astype(np.intp)
            starts = bounds[idx]
            return starts, bounds[idx + 1] - starts
        starts = np.searchsorted(bounds, probes, side="left")
        return starts, np.searchsorted(bounds, probes, side="right") - starts

    def expected_candidates(self, radius: int) -> float:
        """Candidates per query if codes were uniform (sizes the query chunks)."""
        rho = max(radius, 0) // self.m
        return sum(len(self._masks_for(w, rho)) * len(self.codes) / 2.0**w for _, w in self._parts)

    def query(self, q: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query row, target row, distance) with Hamming distance <= ``radius``.

        Returns int64 query rows, int64 target rows and int32 distances, sorted by
        (query, target).
        """
        q = np.ascontiguousarray(q, dtype=np.uint64).ravel()
        empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32))
        if radius < 0 or not len(q) or not len(self.codes):
            return empty
        rho = radius // self.m
        per_query = max(self.expected_candidates(radius), 1.0) + sum(
            len(self._masks_for(w, rho)) for _, w in self._parts
        )
        chunk = int(max(1, min(len(q), CANDIDATE_BUDGET // per_query)))
        # probing in value order turns the range reads into one forward sweep (pays once the
        # tables outgrow the cache)
        sweep = len(self.codes) * 8 > SWEEP_BYTES
        out_q, out_t, out_d = [], [], []
        for lo in range(0, len(q), chunk):
            qc = q[lo : lo + chunk]
            for s, (shift, width) in enumerate(self._parts):
                masks = self._masks_for(width, rho)
                probes = (self._substring(qc, shift, width)[:, None] ^ masks[None, :]).ravel()
                probe_query = None
                if sweep:
                    by_value = np.argsort(probes.astype(np.uint16 if width <= 16 else np.uint32), kind="stable")
                    probes, probe_query = probes[by_value], by_value // len(masks)
                starts, counts = self._ranges(s, probes)
                hit = np.flatnonzero(counts)  # probes whose range is not empty
                if not len(hit):
                    continue
                counts = counts[hit]
                hit_query = probe_query[hit] if sweep else hit // len(masks)
                ends = np.cumsum(counts, dtype=counts.dtype)
                # candidate k of probe p sits at sorted position starts[p] + (k - first candidate of p)
                pos = np.arange(int(ends[-1]), dtype=counts.dtype)
                pos += np.repeat(starts[hit] - (ends - counts), counts)
                x = self._check[s][pos]
                x ^= np.repeat(self._check_word(qc, shift, width)[hit_query], counts)
                keep = np.flatnonzero(np.bitwise_count(x) <= radius)
                if not len(keep):
                    continue
                rows = self._order[s][pos[keep]]
                qi = hit_query[np.searchsorted(ends, keep, side="right")]
                full = self.codes[rows] ^ qc[qi]
                d = np.bitwise_count(full)
                ok = d <= radius
                for shift2, width2 in self._parts[:s]:  # keep each pair once: from its first substring
                    ok &= np.bitwise_count(self._substring(full, shift2, width2)) > rho
                out_q.append(qi[ok] + lo)
                out_t.append(rows[ok].astype(np.int64))
                out_d.append(d[ok].astype(np.int32))
        if not out_q:
            return empty
        qi, ti, d = np.concatenate(out_q), np.concatenate(out_t), np.concatenate(out_d)
        order = np.lexsort((ti, qi))
        return qi[order], ti[order], d[order]


def brute_force(
    q: np.ndarray, codes: np.ndarray, radius: int, *, chunk_elements: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference search: popcount of every (query, code) pair, in chunks of query rows.

    Same output as :meth:`HammingIndex.query`; O(len(q) * len(codes)), for tests and the
    benchmark.
    """
    q = np.ascontiguousarray(q, dtype=np.uint64).ravel()
    codes = np.ascontiguousarray(codes, dtype=np.uint64).ravel()
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32))
    if radius < 0 or not len(q) or not len(codes):
        return empty
    rows = max(1, chunk_elements // len(codes))
    out_q, out_t, out_d = [], [], []
    for lo in range(0, len(q), rows):
        d = np.bitwise_count(q[lo : lo + rows, None] ^ codes[None, :])
        qi, ti = np.nonzero(d <= radius)
        out_q.append(qi.astype(np.int64) + lo)
        out_t.append(ti.astype(np.int64))
        out_d.append(d[qi, ti].astype(np.int32))
    return np.concatenate(out_q), np.concatenate(out_t), np.concatenate(out_d)
