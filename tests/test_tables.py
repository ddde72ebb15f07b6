"""Table schemas, validation and the atomic Parquet writer."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weaksup import tables
from weaksup.errors import InputError
from weaksup.tables import (
    SCHEMA_META_KEY,
    conform,
    load_schema,
    parse_arrow_type,
    read_table,
    schema_names,
    validate_file,
    write_json,
    write_table,
)

LABEL_STAGE = ("labels", "hashtag_index", "collisions", "label_overlap")


def labels_data(n: int = 2) -> dict:
    """Columns of a valid labels table with ``n`` rows (source_id of row 0 is null: nullable)."""
    return {
        "label_id": pa.array(range(n), pa.int32()),
        "label": [f"label {i}" for i in range(n)],
        "source": ["file"] * n,
        "source_id": [None] + [f"f:{i}" for i in range(1, n)],
        "canonical": [f"label {i}" for i in range(n)],
        "aliases": [[f"label {i}"] for i in range(n)],
        "hashtags": [[f"label{i}"] for i in range(n)],
    }


def test_schema_names_include_the_label_stage():
    names = schema_names()
    assert set(LABEL_STAGE) <= set(names)
    assert names == sorted(names)


def test_load_labels_schema():
    schema = load_schema("labels")
    assert schema.name == "labels" and schema.version == 1
    assert schema.names == ["label_id", "label", "source", "source_id", "canonical", "aliases", "hashtags"]
    assert schema.field("label_id").arrow_type == pa.int32()
    assert schema.field("hashtags").arrow_type == pa.list_(pa.string())
    assert schema.field("source_id").nullable and not schema.field("label").nullable
    assert all(f.description for f in schema.fields)
    arrow = schema.to_arrow()
    assert arrow.metadata[SCHEMA_META_KEY] == b"labels/1"
    assert arrow.field("label").nullable is False
    as_json = json.loads(schema.to_json())
    assert [f["name"] for f in as_json["fields"]] == schema.names
    with pytest.raises(KeyError):
        schema.field("nope")


@pytest.mark.parametrize("name", LABEL_STAGE)
def test_every_label_stage_schema_parses(name):
    schema = load_schema(name)
    assert schema.fields
    schema.to_arrow()  # every declared type is understood


def test_unknown_schema():
    with pytest.raises(InputError) as info:
        load_schema("nope")
    assert "unknown table schema 'nope'" in str(info.value)
    assert "labels" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int32", pa.int32()),
        ("string", pa.string()),
        ("list<int32>", pa.list_(pa.int32())),
        ("list<list<string>>", pa.list_(pa.list_(pa.string()))),
        (" timestamp[us, UTC] ", pa.timestamp("us", tz="UTC")),
    ],
)
def test_parse_arrow_type(text, expected):
    assert parse_arrow_type(text) == expected


def test_parse_arrow_type_unknown():
    with pytest.raises(ValueError, match="unknown Arrow type"):
        parse_arrow_type("decimal")


# --- conform --------------------------------------------------------------------------


def test_conform_orders_casts_and_keeps_extras():
    data = {**labels_data(), "label_id": [0, 1]}  # int64 from Python ints
    data = {"extra": [1, 2], **{k: data[k] for k in reversed(list(data))}}
    table = conform(data, load_schema("labels"))
    assert table.column_names[:7] == load_schema("labels").names
    assert table.column_names[7:] == ["extra"]
    assert table.schema.field("label_id").type == pa.int32()
    assert table.schema.metadata[SCHEMA_META_KEY] == b"labels/1"


def test_conform_fills_missing_nullable_column():
    data = labels_data()
    del data["source_id"]
    table = conform(data, load_schema("labels"))
    assert table.column("source_id").null_count == 2


def test_conform_rejects_missing_required_column_and_nulls():
    data = labels_data()
    del data["label"]
    with pytest.raises(ValueError, match="did not provide column 'label'"):
        conform(data, load_schema("labels"))
    data = labels_data()
    data["label"] = ["a", None]
    with pytest.raises(ValueError, match="column 'label' has nulls"):
        conform(data, load_schema("labels"))


# --- write_table is atomic ------------------------------------------------------------


def test_write_table_round_trip_and_no_temp_file(tmp_path):
    out = tmp_path / "sub" / "labels.parquet"
    write_table("labels", labels_data(3), out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.parquet"]
    assert pq.read_schema(out).metadata[SCHEMA_META_KEY] == b"labels/1"
    assert read_table("labels", out).num_rows == 3
    assert validate_file("labels", out) == 3


def test_write_table_leaves_existing_file_untouched_when_conform_fails(tmp_path):
    out = tmp_path / "labels.parquet"
    write_table("labels", labels_data(2), out)
    before = out.read_bytes()
    bad = labels_data(5)
    bad["canonical"][3] = None
    with pytest.raises(ValueError):
        write_table("labels", bad, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.parquet"]


def test_write_table_cleans_up_when_writing_fails(tmp_path, monkeypatch):
    out = tmp_path / "labels.parquet"
    write_table("labels", labels_data(2), out)
    before = out.read_bytes()

    def half_write(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a table")
        raise OSError("disk full")

    monkeypatch.setattr(tables.pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_table("labels", labels_data(4), out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.parquet"]


def test_write_table_new_file_not_created_on_failure(tmp_path):
    out = tmp_path / "never.parquet"
    with pytest.raises(ValueError):
        write_table("labels", {"label_id": [0]}, out)
    assert list(tmp_path.iterdir()) == []


def test_write_table_bad_output_paths(tmp_path):
    folder = tmp_path / "labels.parquet"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        write_table("labels", labels_data(), folder)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(InputError) as info:
        write_table("labels", labels_data(), blocker / "sub" / "labels.parquet")
    assert f"cannot create output folder {blocker / 'sub'}" in str(info.value)
    with pytest.raises(InputError, match="cannot create output folder"):
        write_json({}, blocker / "summary.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "labels.parquet"]


def test_write_json_atomic(tmp_path):
    out = tmp_path / "s" / "summary.json"
    write_json({"labels": 3, "path": tmp_path}, out)
    assert json.loads(out.read_text(encoding="utf-8")) == {"labels": 3, "path": str(tmp_path)}
    assert [p.name for p in out.parent.iterdir()] == ["summary.json"]


# --- read_table / validate_file -------------------------------------------------------


def test_validate_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as info:
        validate_file("labels", tmp_path / "nope.parquet")
    assert str(tmp_path / "nope.parquet") in str(info.value)


def test_validate_not_parquet(tmp_path):
    path = tmp_path / "labels.parquet"
    path.write_text("label_id,label\n0,abseiling\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        validate_file("labels", path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: not a readable Parquet file")
    assert "\n" not in msg


def test_validate_truncated_parquet(tmp_path):
    path = tmp_path / "labels.parquet"
    write_table("labels", labels_data(50), path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(InputError, match="not a readable Parquet file"):
        validate_file("labels", path)


def test_validate_missing_column(tmp_path):
    path = tmp_path / "labels.parquet"
    data = labels_data()
    del data["canonical"]
    pq.write_table(pa.table(data), path)
    with pytest.raises(InputError) as info:
        validate_file("labels", path)
    assert str(info.value).startswith(f"{path}: missing column 'canonical'")


def test_validate_wrong_type(tmp_path):
    path = tmp_path / "labels.parquet"
    data = labels_data()
    data["label_id"] = ["0", "1"]
    pq.write_table(pa.table(data), path)
    with pytest.raises(InputError) as info:
        validate_file("labels", path)
    assert str(info.value) == (
        f"{path}: column 'label_id' has type string, expected int32 (text where numbers are needed; row 0: '0')"
    )


def test_validate_nulls_in_non_nullable_column(tmp_path):
    path = tmp_path / "labels.parquet"
    data = labels_data(3)
    data["label"] = ["a", None, None]
    pq.write_table(pa.table(data), path)
    with pytest.raises(InputError) as info:
        validate_file("labels", path)
    assert str(info.value) == f"{path}: column 'label' has 2 null value(s) but is not nullable"


def test_validate_accepts_nullable_nulls_large_types_and_extras(tmp_path):
    path = tmp_path / "labels.parquet"
    data = labels_data(2)
    table = pa.table(
        {
            **{k: v for k, v in data.items() if k not in ("label", "hashtags", "label_id")},
            "label_id": pa.array([0, 1], pa.int32()),
            "label": pa.array(data["label"], pa.large_string()),
            "hashtags": pa.array(data["hashtags"], pa.large_list(pa.string())),
            "note": ["x", "y"],
        }
    )
    pq.write_table(table, path)
    assert validate_file("labels", path) == 2


def test_read_table_checks_only_requested_columns(tmp_path):
    path = tmp_path / "labels.parquet"
    data = labels_data()
    del data["canonical"]
    pq.write_table(pa.table(data), path)
    assert read_table("labels", path, columns=["label_id", "label"]).column_names == ["label_id", "label"]


# ---- tables written by other tools (issue 15, item 7) -----------------------------------------


def pandas_manifest(path, label_ids=(0, 1, 2)):
    """A manifest as pandas writes it: int64 ids, large_string text, list<int64> lists."""
    pd = pytest.importorskip("pandas")
    n = len(label_ids)
    pd.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "uri": [f"/videos/{i}.mp4" for i in range(n)],
            "label_id": list(label_ids),
            "label": [f"label {i}" for i in label_ids],
            "matched_label_ids": [[i] for i in label_ids],
            "duration_s": [10.0] * n,
        }
    ).to_parquet(path)
    table = pq.read_table(path)
    table = table.set_column(3, "label", table.column("label").cast(pa.large_string()))
    pq.write_table(table, path)
    return path


def test_pandas_written_manifest_reads_and_checks(tmp_path):
    path = pandas_manifest(tmp_path / "manifest.parquet")
    raw = pq.read_table(path)
    assert raw.schema.field("label_id").type == pa.int64()
    assert raw.schema.field("label").type == pa.large_string()
    assert raw.schema.field("matched_label_ids").type.value_type == pa.int64()
    table = read_table("manifest", path)
    assert table.schema.field("label_id").type == pa.int32()
    assert table.schema.field("label").type == pa.string()
    assert table.schema.field("matched_label_ids").type == pa.list_(pa.int32())
    assert table.column("label_id").to_pylist() == [0, 1, 2]
    checked = tables.check_table(raw, load_schema("manifest"), str(path))
    assert checked.schema.field("label_id").type == pa.int32()
    assert validate_file("manifest", path) == 3


def test_int64_ids_out_of_range_name_the_column_and_row(tmp_path):
    path = pandas_manifest(tmp_path / "manifest.parquet", label_ids=(0, 1, 2**31, 4))
    with pytest.raises(InputError) as info:
        read_table("manifest", path)
    assert str(info.value) == (f"{path}: column 'label_id' row 2: value 2147483648 does not fit int32 (out of range)")
    lists = {
        "hashtag": ["a", "b", "c"],
        "label_ids": pa.array([[0], [1, -(2**40)], [2]], pa.list_(pa.int64())),
        "labels": [["a"], ["b"], ["c"]],
        "kept_label_ids": pa.array([[0], [1], [2]], pa.large_list(pa.int64())),
    }
    pq.write_table(pa.table(lists), tmp_path / "collisions.parquet")
    with pytest.raises(InputError, match=r"column 'label_ids' row 1: value -1099511627776 does not fit list<int32>"):
        read_table("collisions", tmp_path / "collisions.parquet")


def test_text_where_numbers_are_needed_names_the_first_row(tmp_path):
    path = tmp_path / "manifest.parquet"
    pandas_manifest(path)
    table = pq.read_table(path)
    table = table.set_column(5, "duration_s", pa.array([None, "12.5", "x"], pa.string()))
    pq.write_table(table, path)
    with pytest.raises(
        InputError,
        match=r"column 'duration_s' has type string, expected float64 "
        r"\(text where numbers are needed; row 1: '12\.5'\)",
    ):
        read_table("manifest", path)


def test_float_widths_and_large_lists_cast_floats_never_truncate_to_ids(tmp_path):
    schema = load_schema("features")
    table = pa.table(
        {
            "video_id": pa.array(["a", "b"], pa.large_string()),
            "label_id": pa.array([0, 1], pa.uint8()),
            "features": pa.array([[0.5, 1.5], [2.5, 3.5]], pa.large_list(pa.float64())),
            "clip_features": pa.array([[[1.0, 2.0]], None], pa.list_(pa.large_list(pa.float64()))),
        }
    )
    checked = tables.check_table(table, schema, "t")
    assert checked.schema.field("features").type == pa.list_(pa.float32())
    assert checked.schema.field("clip_features").type == pa.list_(pa.list_(pa.float32()))
    assert checked.schema.field("label_id").type == pa.int32()
    too_big = table.set_column(2, "features", pa.array([[0.5], [1e300]], pa.list_(pa.float64())))
    with pytest.raises(InputError, match=r"column 'features' row 1: value 1e\+300 does not fit list<float32>"):
        tables.check_table(too_big, schema, "t")
    floats = table.set_column(1, "label_id", pa.array([0.0, 1.0]))
    with pytest.raises(InputError, match=r"column 'label_id' has type double, expected int32"):
        tables.check_table(floats, schema, "t")
    durations = pa.table(
        {
            "video_id": ["a"],
            "uri": ["u"],
            "label_id": [0],
            "label": ["x"],
            "matched_label_ids": [[0]],
            "duration_s": pa.array([3.5], pa.float32()),
        }
    )
    assert tables.check_table(durations, load_schema("manifest"), "m").schema.field("duration_s").type == pa.float64()


def test_optional_columns_are_filled_and_schemas_say_what_is_required(tmp_path):
    for name in schema_names():
        schema = load_schema(name)
        grouped = {c for group in schema.require_one_of for c in group}
        for f in schema.fields:
            if not f.required:
                assert f.fillable or f.name in grouped, f"{name}.{f.name}: optional but cannot be filled"
        for group in schema.require_one_of:
            assert all(not schema.field(c).required for c in group)
    path = tmp_path / "features.parquet"
    pq.write_table(pa.table({"video_id": ["a", "b"], "label_id": [3, 4], "features": [[1.0], [2.0]]}), path)
    table = read_table("features", path)
    assert table.column("status").to_pylist() == ["ok", "ok"]
    assert table.column("clips").null_count == 2 and table.column("uri").null_count == 2
    assert table.column("label_id").type == pa.int32()
    assert set(load_schema("features").names) <= set(table.column_names)
    assert json.loads(load_schema("features").to_json())["require_one_of"] == [["label_id", "label"]]
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(
        pa.table({"video_id": ["a"], "uri": ["u"], "label_id": [0], "label": ["x"], "matched_label_ids": [[0]]}),
        manifest,
    )
    assert read_table("manifest", manifest).column("duration_s").to_pylist() == [None]
    assert read_table("manifest", manifest, columns=["video_id", "duration_s"]).column_names == [
        "video_id",
        "duration_s",
    ]


def test_read_batches_checks_like_read_table_a_batch_at_a_time(tmp_path) -> None:
    """The whole table, checked and filled as read_table does it, in batches; an empty table
    gives one empty batch with every column; a missing column fails before any batch."""
    rows = {
        "video_id": [f"v{i}" for i in range(5)],
        "uri": [f"/v/{i}.mp4" for i in range(5)],
        "label_id": pa.array(range(5), pa.int64()),  # cast to the schema's int32, as read_table does
        "label": [f"l{i}" for i in range(5)],
        "matched_label_ids": [[i] for i in range(5)],
    }
    pq.write_table(pa.table(rows), tmp_path / "m.parquet")
    batches = list(tables.read_batches("manifest", tmp_path / "m.parquet", batch_size=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.concat_tables(batches).equals(tables.read_table("manifest", tmp_path / "m.parquet"))
    pq.write_table(pa.table(rows).slice(0, 0), tmp_path / "empty.parquet")
    (empty,) = tables.read_batches("manifest", tmp_path / "empty.parquet")
    assert empty.num_rows == 0 and empty.schema.equals(batches[0].schema)
    pq.write_table(pa.table(rows).drop_columns(["uri"]), tmp_path / "no_uri.parquet")
    with pytest.raises(InputError, match="missing column 'uri'"):
        next(tables.read_batches("manifest", tmp_path / "no_uri.parquet"))
    bad = pa.table({**rows, "label_id": pa.array([0, 1, 2, 3, None], pa.int64())})
    pq.write_table(bad, tmp_path / "null.parquet")
    with pytest.raises(InputError, match="label_id"):
        list(tables.read_batches("manifest", tmp_path / "null.parquet", batch_size=2))
