"""Seed label sources: Kinetics-400, ImageNet-1K, VerbNet, Kinetics verbs, user files.

Each source returns a list of :class:`SeedLabel`; ``build`` turns them into the labels
table. Kinetics-400 and ImageNet-1K are bundled (see ``data/NOTICE.md``), so only the
VerbNet source needs a corpus (NLTK's, from a user path).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
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
    #: literal hashtags of the label (normalised, deduplicated): used as they are, never inflected
    hashtags: tuple[str, ...] = ()


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


def read_text_file(path: str | os.PathLike[str], kind: str = "label", *, allow_empty: bool = False) -> str:
    """The text of a small input file (label list, label map, tag list): a regular, readable
    file of at most :data:`weaksup.uris.MAX_TEXT_BYTES`, valid UTF-8, not empty (unless
    ``allow_empty``); else InputError naming the file (and the line of a bad byte)."""
    data = uris.read_input_bytes(path, kind)
    label = uris.display(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{label}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not allow_empty and not text.strip():
        raise InputError(f"{label}: empty {kind} file")
    return text


def read_hashtag_list(path: str | os.PathLike[str], kind: str = "drop-tags") -> list[str]:
    """The hashtags of a tag-list file (``--drop-tags``): one a line, ``#`` optional, normalised
    like label hashtags, blank lines skipped, deduplicated in order. A line that normalises to
    nothing is an error naming the file and line."""
    label = uris.display(path)
    tags = []
    for n, line in enumerate(read_text_file(path, kind, allow_empty=True).splitlines(), start=1):
        if not line.strip():
            continue
        tag = normalize_hashtag(line)
        if not tag:
            raise InputError(f"{label}:{n}: {line.strip()!r} is not a hashtag (no letters or digits)")
        tags.append(tag)
    return list(dict.fromkeys(tags))


def label_key(label: str) -> str:
    """How label names are compared: case-insensitive, runs of spaces as one."""
    return " ".join(label.casefold().split())


def _phrases(values: list[str], where: str, what: str) -> tuple[str, ...]:
    """Aliases: stripped, deduplicated (case-insensitively); each must normalise to something."""
    out: dict[str, str] = {}
    for value in values:
        value = value.strip()
        if not value:
            continue
        if not normalize_hashtag(value):
            raise InputError(f"{where}: {what} {value!r} normalises to nothing (no letters or digits)")
        out.setdefault(label_key(value), " ".join(value.split()))
    return tuple(out.values())


def _tags(values: list[str], where: str) -> tuple[str, ...]:
    """Literal hashtags: normalised (``#`` optional), deduplicated; each must normalise to something."""
    out = []
    for value in values:
        if not value.strip():
            continue
        tag = normalize_hashtag(value)
        if not tag:
            raise InputError(f"{where}: hashtag {value.strip()!r} normalises to nothing (no letters or digits)")
        out.append(tag)
    return tuple(dict.fromkeys(out))


#: Optional columns of a CSV labels file; values separated by ``|``.
ALIASES_COLUMN, HASHTAGS_COLUMN = "aliases", "hashtags"


def file_labels(path: str | os.PathLike[str], *, column: str | None = None, pos: Pos | None = None) -> list[SeedLabel]:
    """Labels from a user file: one label per line, or a CSV column (``column``).

    A CSV may also carry the optional columns ``aliases`` (more phrases for the label; its
    relevant hashtags are generated from each, like from the label) and ``hashtags``
    (literal tags, only normalised: ``SeedLabel.hashtags``), several values separated by
    ``|``, in any language (``baile|舞蹈``).

    Blank lines, duplicate labels and labels that normalise to nothing are errors that
    name the file and line, never silently dropped.
    """
    path = Path(path)
    text = read_text_file(path)
    rows: list[tuple[int, str]] = []
    extra: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}
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
        alias_at = header.index(ALIASES_COLUMN) if ALIASES_COLUMN in header and col != ALIASES_COLUMN else None
        tags_at = header.index(HASHTAGS_COLUMN) if HASHTAGS_COLUMN in header and col != HASHTAGS_COLUMN else None
        for line_no, row in lines:
            rows.append((line_no, row[at].strip()))
            where = f"{path}:{line_no}"
            aliases = _phrases(row[alias_at].split("|"), where, "alias") if alias_at is not None else ()
            tags = _tags(row[tags_at].split("|"), where) if tags_at is not None else ()
            extra[line_no] = (aliases, tags)
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
        key = label_key(label)
        if key in seen:
            raise InputError(f"{path}:{line_no}: duplicate label {label!r} (first on line {seen[key]})")
        seen[key] = line_no
        aliases, tags = extra.get(line_no, ((), ()))
        aliases = (label,) + tuple(a for a in aliases if label_key(a) != key)
        out.append(SeedLabel(label, "file", f"{path.name}:{line_no}", aliases, pos, tags))
    return out


AliasesMap = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


def read_aliases_file(path: str | os.PathLike[str]) -> AliasesMap:
    """Aliases and literal hashtags per label from a CSV (TSV by suffix) with the columns
    ``label`` and one or both of ``alias`` and ``hashtag``, one value per row; a label may
    take several rows (``dancing,baile,`` then ``dancing,,跳舞``).

    Returns {label as first written: (aliases, hashtags)}; rows naming one label in other
    case or spacing are merged, values deduplicated, hashtags normalised. A row without a
    label, or with neither an alias nor a hashtag, is an error naming the file and line.
    """
    path = Path(path)
    text = read_text_file(path, "label aliases")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    lines = strict_csv_rows(io.StringIO(text, newline=""), str(path), delimiter=delimiter)
    header = [h.strip() for h in next(lines, (1, []))[1]]
    if "label" not in header or not ({"alias", "hashtag"} & set(header)):
        raise InputError(
            f"{path}: an aliases file needs the columns label and alias and/or hashtag; "
            f"columns are {', '.join(header) or 'none'}"
        )
    at = header.index("label")
    alias_at = header.index("alias") if "alias" in header else None
    tag_at = header.index("hashtag") if "hashtag" in header else None
    names: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    tags: dict[str, list[str]] = {}
    for line_no, row in lines:
        where = f"{path}:{line_no}"
        label = " ".join(row[at].split())
        alias = row[alias_at].strip() if alias_at is not None else ""
        tag = row[tag_at].strip() if tag_at is not None else ""
        if not label:
            raise InputError(f"{where}: no label")
        if not alias and not tag:
            raise InputError(f"{where}: label {label!r} has neither an alias nor a hashtag")
        key = label_key(label)
        names.setdefault(key, label)
        aliases.setdefault(key, []).extend(_phrases([alias], where, "alias"))
        tags.setdefault(key, []).extend(_tags([tag], where))
    if not names:
        raise InputError(f"{path}: no rows after the header")
    return {names[k]: (_phrases(aliases[k], str(path), "alias"), tuple(dict.fromkeys(tags[k]))) for k in names}


def with_aliases(seeds: list[SeedLabel], aliases_map: AliasesMap, *, source: str = "aliases file") -> list[SeedLabel]:
    """``seeds`` with the aliases and literal hashtags of ``aliases_map`` (from
    :func:`read_aliases_file`) added, matched by label name (case-insensitive, any spacing).

    Every name of the map must be a label of ``seeds``: names that match none raise
    InputError (up to 5 shown) rather than being silently ignored; ``source`` names the
    file in that message.
    """
    by_key = {label_key(name): value for name, value in aliases_map.items()}
    used: set[str] = set()
    out = []
    for seed in seeds:
        key = label_key(seed.label)
        if key not in by_key:
            out.append(seed)
            continue
        used.add(key)
        more_aliases, more_tags = by_key[key]
        have = {label_key(a) for a in seed.aliases}
        aliases = seed.aliases + tuple(a for a in more_aliases if label_key(a) not in have)
        tags = tuple(dict.fromkeys(seed.hashtags + tuple(more_tags)))
        out.append(replace(seed, aliases=aliases, hashtags=tags))
    unknown = [name for name in aliases_map if label_key(name) not in used]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"{source}: {len(unknown)} label(s) match no label of the sources: {shown}")
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
