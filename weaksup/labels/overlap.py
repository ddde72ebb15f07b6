"""`weaksup label-overlap`: how well a pre-training label space covers a target's labels.

The paper's argument for IG-Kinetics on Kinetics (and IG-Verb on EPIC verbs) is label
overlap; this measures it: a target label is reached exactly (same canonical form) or
through hashtags it shares with the source space; it is reached *partially* when a
source label's canonical form is part of it (the verb ``dribble`` in "dribbling
basketball"), which is how a verb space relates to a verb+noun target, or when it is part
of a source label's (target "dribble" inside source "dribbling basketball": a verb target
reached by a verb+noun space).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from weaksup.tables import read_table, write_table


def _grams(canonical: str) -> set[str]:
    words = canonical.split()
    return {" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}


def label_overlap(source: str | Path, target: str | Path, out: str | Path | None = None) -> tuple[pa.Table, dict]:
    """Per target label: exact match, shared hashtags and the source labels that reach it."""
    a = read_table("labels", source).to_pylist()
    b = read_table("labels", target).to_pylist()
    by_canonical: dict[str, list[int]] = defaultdict(list)
    by_tag: dict[str, list[int]] = defaultdict(list)
    by_gram: dict[str, set[int]] = defaultdict(set)  # every word n-gram of a source canonical form
    names = {}
    for row in a:
        by_canonical[row["canonical"]].append(row["label_id"])
        for gram in _grams(row["canonical"]):
            by_gram[gram].add(row["label_id"])
        names[row["label_id"]] = row["label"]
        for tag in row["hashtags"]:
            by_tag[tag].append(row["label_id"])
    rows = []
    for row in b:
        exact_ids = by_canonical.get(row["canonical"], [])
        inside_target = {i for g in _grams(row["canonical"]) if g != row["canonical"] for i in by_canonical.get(g, [])}
        target_inside = by_gram.get(row["canonical"], set()) - set(exact_ids)  # both ways
        partial_ids = sorted(inside_target | target_inside)
        shared = [t for t in row["hashtags"] if t in by_tag]
        ids = sorted(set(exact_ids) | {i for t in shared for i in by_tag[t]})
        rows.append(
            {
                "target_label_id": row["label_id"],
                "target_label": row["label"],
                "exact": bool(exact_ids),
                "shared_hashtags": len(shared),
                "reached": bool(exact_ids) or bool(shared),
                "partial": bool(partial_ids),
                "partial_label_ids": partial_ids,
                "source_label_ids": ids,
                "source_labels": [names[i] for i in ids],
            }
        )
    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    summary = {
        "source": str(source),
        "target": str(target),
        "target_labels": len(b),
        "exact": sum(r["exact"] for r in rows),
        "reached": sum(r["reached"] for r in rows),
        "reached_fraction": (sum(r["reached"] for r in rows) / len(b)) if b else 0.0,
        "partial": sum(r["partial"] and not r["reached"] for r in rows),
        "reached_or_partial": sum(r["reached"] or r["partial"] for r in rows),
    }
    if out is not None:
        table = write_table("label_overlap", table, out)
    return table, summary
