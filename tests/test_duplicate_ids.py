"""Repeated ids found by Ray tasks (weaksup/duplicate_ids.py): the same repeats as a sort in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weaksup import duplicate_ids
from weaksup.blocks import PartStore, TableInput
from weaksup.duplicate_ids import id_hashes, repeated_id_hashes

pytestmark = pytest.mark.slow


def test_repeats_across_blocks_and_buckets_equal_a_sort_in_memory(
    tmp_path: Path, local_ray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duplicate_ids, "BUCKET_ROWS", 64)  # 3,000 rows: 64 buckets
    monkeypatch.setattr(duplicate_ids, "BLOCK_CHUNK", 100)
    rng = np.random.default_rng(0)
    ids = [f"v{i}" for i in rng.integers(0, 2500, size=3000)] + [None, ""]  # repeats, and a null that hashes as ""
    for i, part in enumerate(np.array_split(np.arange(len(ids)), 3)):  # a folder of three files
        pq.write_table(
            pa.table({"video_id": pa.array([ids[j] for j in part], pa.string())}),
            tmp_path / f"p{i}.parquet",
            row_group_size=700,
        )
    files = tuple(str(tmp_path / f"p{i}.parquet") for i in range(3))
    source = TableInput(root=str(tmp_path), files=files, columns=("video_id",))
    store = PartStore(tmp_path / "scratch")
    got = repeated_id_hashes(source, "video_id", "salt", store=store, rows=len(ids))
    hashes = np.sort(id_hashes(pa.array(ids, pa.string()), "salt"))
    assert np.array_equal(got, np.unique(hashes[1:][hashes[1:] == hashes[:-1]]))
    assert len(got) > 300 and not (tmp_path / "scratch").exists()
    with pytest.raises(RuntimeError, match="planned"):  # a table that is not the rows planned never passes
        repeated_id_hashes(source, "video_id", "salt", store=store, rows=len(ids) + 1)
