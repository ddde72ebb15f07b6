"""search: HammingIndex (multi-index hashing) vs a brute-force numpy popcount scan, side by side.

Random 64-bit target codes (1k .. 1M) with planted near neighbours at every distance
0..radius+1; the queries are the planted ones' sources plus random codes. Both methods
answer the same queries; their answers are checked to be identical, and the time per
query frame is the best of ``--repeats`` runs (build time separate). Goals: <= 50 us per
query at 1M targets and <= 10x growth from 1k to 1M.

    python benchmarks/search_bench.py [--queries 2000] [--radius 7] [--sizes 1000 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def flip(rng: np.random.Generator, codes: np.ndarray, bits: int) -> np.ndarray:
    if bits == 0:
        return codes.copy()
    which = np.argsort(rng.random((len(codes), 64)), axis=1)[:, :bits].astype(np.uint64)
    return codes ^ np.bitwise_or.reduce(np.uint64(1) << which, axis=1)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    from weaksup.dedupe.search import HammingIndex, brute_force

    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--radius", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        rng = np.random.default_rng(args.seed)
        targets = rng.integers(0, 2**64, n, dtype=np.uint64)
        half = args.queries // 2
        picked = rng.integers(0, n, half)
        # planted: half the queries sit at distance 0..radius+1 of some target
        planted = np.concatenate(
            [flip(rng, targets[p], k) for k, p in zip(range(args.radius + 2), np.array_split(picked, args.radius + 2))]
        )
        queries = np.concatenate([planted, rng.integers(0, 2**64, args.queries - len(planted), dtype=np.uint64)])
        t = time.perf_counter()
        index = HammingIndex().build(targets)
        build_s = time.perf_counter() - t
        index_s, got = best_of(lambda: index.query(queries, args.radius), args.repeats)
        brute_s, want = best_of(lambda: brute_force(queries, targets, args.radius), 1 if n >= 100_000 else args.repeats)
        same = all(np.array_equal(g, w) for g, w in zip(got, want))
        rows.append((n, build_s, 1e6 * index_s / len(queries), 1e6 * brute_s / len(queries), len(got[0]), same))

    print(
        f"\nHamming radius {args.radius}, {args.queries} query frames ({args.queries // 2} planted near neighbours), "
        f"4 x 16-bit substrings; best of {args.repeats}\n"
    )
    print("| targets | build (s) | HammingIndex (µs/query) | brute force (µs/query) | speed-up | matches | identical |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for n, build_s, idx_us, bf_us, matches, same in rows:
        ok = "yes" if same else "NO"
        print(f"| {n:,} | {build_s:.3f} | {idx_us:.2f} | {bf_us:.1f} | {bf_us / idx_us:.0f}x | {matches} | {ok} |")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(
            f"\ngrowth {first[0]:,} -> {last[0]:,} targets: HammingIndex {last[2] / first[2]:.1f}x, "
            f"brute force {last[3] / first[3]:.0f}x (goals: <= 50 µs/query at 1M, <= 10x growth)"
        )


if __name__ == "__main__":
    main()
