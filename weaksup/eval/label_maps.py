"""Label maps: the class list of a target benchmark, so features are matched to classes by name.

A features table carries ``label_id`` in the numbering of the manifest it came from and,
usually, the label's name. Two tables made from different manifests (or a benchmark's own
label file) can number classes differently; comparing ids would then be a silently wrong
metric. A label map fixes one numbering, and every row is mapped to it by name.

Read formats (what target benchmarks ship): one name per line (Kinetics-400
``label_map.txt``, UCF101, HMDB51, Something-Something), ``N name`` lines (UCF101's
``classInd.txt``), CSV with a header (EPIC-KITCHENS ``key``/``class_key``, or ``label``/
``name``), and weaksup labels tables (``.parquet``). Names match case- and
separator-insensitively (``brush_hair`` = ``Brush hair``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from weaksup.errors import InputError
from weaksup.labels.sources import read_text_file
from weaksup.tables import strict_csv_rows

_NAME_COLUMNS = ("key", "class_key", "label", "name", "class", "class_name")
_ID_COLUMNS = ("id", "label_id", "class_id", "verb_id", "noun_id", "index")
_NUMBERED = re.compile(r"^\s*(\d+)[\s,]+(\S.*?)\s*$")


def name_key(name: str) -> str:
    """How names are compared: case-, underscore-, hyphen-, space- and CamelCase-insensitive
    (``ApplyEyeMakeup`` = ``apply_eye_makeup`` = ``Apply eye makeup``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(re.sub(r"[_\-]+", " ", spaced).casefold().split())


@dataclass(frozen=True)
class LabelMap:
    """Class names in class-index order, and the file they came from."""

    names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for i, name in enumerate(self.names):
            key = name_key(name)
            if not key:
                raise InputError(f"{self.source}: class {i} has an empty name")
            if key in seen:
                raise InputError(f"{self.source}: class names {self.names[seen[key]]!r} and {name!r} are the same name")
            seen[key] = i

    def __len__(self) -> int:
        return len(self.names)

    def index(self) -> dict[str, int]:
        return {name_key(n): i for i, n in enumerate(self.names)}


def read_label_map(path: str | Path) -> LabelMap:
    """A label map from a file (see the module notes for the formats)."""
    path = Path(path)
    if path.suffix == ".parquet":
        from weaksup.tables import read_table

        table = read_table("labels", path, columns=["label_id", "label"])
        pairs = sorted(zip(table.column("label_id").to_pylist(), table.column("label").to_pylist()))
        ids = [i for i, _ in pairs]
        if ids != list(range(len(ids))):
            raise InputError(f"{path}: label_id must run 0..{len(ids) - 1} without gaps to be a label map")
        return LabelMap(tuple(n for _, n in pairs), str(path))
    text = read_text_file(path, "label map")
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0]
    header = [h.strip().casefold() for h in next(csv.reader([first]))]
    name_col = next((c for c in _NAME_COLUMNS if c in header), None)
    if name_col is not None and ("," in first or path.suffix.lower() == ".csv"):
        # Strict: an unterminated quote or a ragged row names its line (never merged classes).
        rows = strict_csv_rows(io.StringIO(text, newline=""), str(path))
        fields = [h.strip().casefold() for h in next(rows)[1]]
        at = fields.index(name_col)
        id_at = next((i for i, f in enumerate(fields) if f in _ID_COLUMNS), None)
        entries = []
        for i, (line_no, row) in enumerate(rows):
            class_id = i
            if id_at is not None:
                try:
                    class_id = int(row[id_at])
                except ValueError:
                    raise InputError(f"{path}:{line_no}: class id {row[id_at]!r} is not a whole number") from None
            entries.append((class_id, row[at].strip()))
        return _ordered(entries, path)
    numbered = [_NUMBERED.match(line) for line in lines]
    if all(numbered) and len(lines) > 1:
        entries = [(int(m.group(1)), m.group(2)) for m in numbered if m]
        base = min(i for i, _ in entries)
        return _ordered([(i - base, n) for i, n in entries], path)
    return LabelMap(tuple(line.strip() for line in lines), str(path))


def _ordered(entries: list[tuple[int, str]], path: Path) -> LabelMap:
    entries.sort()
    ids = [i for i, _ in entries]
    if ids != list(range(len(ids))):
        raise InputError(f"{path}: class ids must run 0..{len(ids) - 1} without gaps (found {ids[:5]}...)")
    return LabelMap(tuple(n for _, n in entries), str(path))
