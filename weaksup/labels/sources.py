"""Seed label sources: Kinetics-400, ImageNet-1K, VerbNet, Kinetics verbs, user files.

Each source returns a list of :class:`SeedLabel`; ``build`` turns them into the labels
table. Kinetics-400 and ImageNet-1K are bundled (see ``data/NOTICE.md``), so only the
VerbNet source needs a corpus (NLTK's, from a user path).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from weaksup import uris
from weaksup.errors import InputError
from weaksup.labels.hashtags import Pos, label_words, normalize_hashtag, verb_lemma_of_gerund
from weaksup.tables import strict_csv_rows


@dataclass(frozen=True)
class SeedLabel:
    """One seed label before ids are assigned."""

    label: str
    source: str
    source_id: str | None
    aliases: tuple[str, ...]
    pos: Pos | None = None


def _bundled(name: str) -> str:
    return resources.files("weaksup.labels").joinpath("data", name).read_text(encoding="utf-8")


def kinetics400_labels() -> list[SeedLabel]:
    """The 400 Kinetics-400 classes, in class-index order."""
    names = [line.strip() for line in _bundled("kinetics400.txt").splitlines() if line.strip()]
    return [SeedLabel(n, "kinetics400", str(i), (n,)) for i, n in enumerate(names)]


def imagenet_labels() -> list[SeedLabel]:
    """The 1000 ILSVRC-2012 synsets: label = first lemma, aliases = all lemma names."""
    out = []
    for line in _bundled("imagenet1k.tsv").splitlines():
        wnid, _, lemmas = line.partition("\t")
        names = tuple(dict.fromkeys(x.strip() for x in lemmas.split(",") if x.strip()))
        out.append(SeedLabel(names[0], "imagenet", wnid, names, "noun"))
    return out


def kinetics_verb_labels() -> list[SeedLabel]:
    """Verbs found in the Kinetics-400 labels: every word that is a verb's -ing form.

    ``source_id`` lists the Kinetics classes that contain the verb.
    """
    found: dict[str, list[str]] = {}
    for seed in kinetics400_labels():
        main, _ = label_words(seed.label)
        for word in main:
            lemma = verb_lemma_of_gerund(word)
            if lemma is not None:
                found.setdefault(lemma, []).append(seed.label)
    return [
        SeedLabel(verb, "kinetics-verbs", "; ".join(dict.fromkeys(classes)), (verb,), "verb")
        for verb, classes in sorted(found.items())
    ]


VERBNET_VERSIONS = {"2.1": "verbnet", "3": "verbnet3", "3.3": "verbnet3"}


def verbnet_labels(*, version: str = "3.3", nltk_data: str | os.PathLike[str] | None = None) -> list[SeedLabel]:
    """VerbNet verb lemmas through ``nltk.corpus``; ``source_id`` lists their VerbNet classes.

    The corpus is looked up in ``nltk_data``, then ``NLTK_DATA`` and NLTK's default paths.
    """
    import nltk
    from nltk.corpus.reader import VerbnetCorpusReader

    if version not in VERBNET_VERSIONS:
        raise InputError(f"unknown VerbNet version {version!r}; choose 2.1 or 3.3")
    corpus = VERBNET_VERSIONS[version]
    paths = [str(nltk_data)] if nltk_data else []
    paths += [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    # NLTK only reads from folders on nltk.data.path, but that list is process-global: add
    # ours for this call only, so a folder never answers a later call that names another.
    added = [p for p in dict.fromkeys(paths) if p not in nltk.data.path]
    nltk.data.path[:0] = added
    try:
        try:
            root = nltk.data.find(f"corpora/{corpus}")
        except LookupError:
            try:
                root = nltk.data.find(f"corpora/{corpus}.zip/{corpus}/")
            except LookupError:
                where = nltk_data or os.environ.get("NLTK_DATA") or "NLTK's default paths"
                raise InputError(
                    f"VerbNet {version} corpus ({corpus}) not found in {where}; fix: "
                    f"python -m nltk.downloader -d DIR {corpus} (or copy {corpus}.zip into DIR/corpora/), "
                    f"then pass --nltk-data DIR or set NLTK_DATA=DIR"
                ) from None
        reader = VerbnetCorpusReader(root, r"(?!\.).*\.xml")
        out = []
        for lemma in sorted(set(reader.lemmas())):
            name = lemma.replace("_", " ")
            if not normalize_hashtag(name):
                continue
            classes = ",".join(reader.classids(lemma=lemma))
            out.append(SeedLabel(name, f"verbnet{version}", classes, (name,), "verb"))
    finally:
        for p in added:
            if p in nltk.data.path:
                nltk.data.path.remove(p)
    return out


def _decode(path: Path, kind: str = "label") -> str:
    """The text of a small input file (label list, label map): a regular, readable file of at
    most :data:`weaksup.uris.MAX_TEXT_BYTES`, valid UTF-8, not empty; else InputError."""
    data = uris.read_input_bytes(path, kind)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    if not text.strip():
        raise InputError(f"{path}: empty label file")
    return text


def file_labels(path: str | os.PathLike[str], *, column: str | None = None, pos: Pos | None = None) -> list[SeedLabel]:
    """Labels from a user file: one label per line, or a CSV column (``column``).

    Blank lines, duplicate labels and labels that normalise to nothing are errors that
    name the file and line, never silently dropped.
    """
    path = Path(path)
    text = _decode(path)
    rows: list[tuple[int, str]] = []
    if column is not None or path.suffix.lower() in {".csv", ".tsv"}:
        for line_no, line in enumerate(text.rstrip("\n").split("\n"), start=1):
            if not line.strip():  # the csv module would skip it silently
                raise InputError(f"{path}:{line_no}: blank line")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        # Strict: an unterminated quote or a ragged row is an error naming the line (the csv
        # module alone would read the following lines into one label).
        lines = strict_csv_rows(io.StringIO(text, newline=""), str(path), delimiter=delimiter)
        header = next(lines, (1, []))[1]
        col = column or (header[0] if header else None)
        if col is None or col not in header:
            raise InputError(f"{path}: no column {col!r}; columns are {', '.join(header) or 'none'}")
        at = header.index(col)
        rows = [(line_no, row[at].strip()) for line_no, row in lines]
    else:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        rows = [(i, line.strip()) for i, line in enumerate(lines, start=1)]
    seen: dict[str, int] = {}
    out = []
    for line_no, label in rows:
        if not label:
            raise InputError(f"{path}:{line_no}: blank label")
        if not normalize_hashtag(label):
            raise InputError(f"{path}:{line_no}: label {label!r} normalises to nothing (no letters or digits)")
        key = " ".join(label.casefold().split())
        if key in seen:
            raise InputError(f"{path}:{line_no}: duplicate label {label!r} (first on line {seen[key]})")
        seen[key] = line_no
        out.append(SeedLabel(label, "file", f"{path.name}:{line_no}", (label,), pos))
    return out


def parquet_labels(path: str | os.PathLike[str], pos: Pos | None) -> list[SeedLabel]:
    """Seed labels from an existing labels table (for verb-noun products)."""
    from weaksup.tables import read_table

    table = read_table("labels", path).to_pylist()
    return [
        SeedLabel(r["label"], r["source"], r["source_id"], tuple(r["aliases"]) or (r["label"],), pos) for r in table
    ]


NAMED_SOURCES = ("kinetics400", "imagenet", "verbnet", "kinetics-verbs")


def named_labels(name: str, *, verbnet_version: str = "3.3", nltk_data: str | None = None) -> list[SeedLabel]:
    """Labels of a bundled/named source."""
    if name == "kinetics400":
        return kinetics400_labels()
    if name == "imagenet":
        return imagenet_labels()
    if name == "kinetics-verbs":
        return kinetics_verb_labels()
    if name == "verbnet":
        return verbnet_labels(version=verbnet_version, nltk_data=nltk_data)
    raise InputError(
        f"unknown label source {name!r}; choose one of: {', '.join(NAMED_SOURCES + ('verb-noun', 'file'))}"
    )
