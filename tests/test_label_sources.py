"""Seed label sources: bundled Kinetics-400 / ImageNet-1K, Kinetics verbs, VerbNet, user files."""

from __future__ import annotations

import os

import nltk
import pytest
from conftest import write_lines

from weaksup.errors import InputError
from weaksup.labels.sources import (
    NAMED_SOURCES,
    file_labels,
    imagenet_labels,
    kinetics400_labels,
    kinetics_verb_labels,
    named_labels,
    read_aliases_file,
    verbnet_labels,
    with_aliases,
)

# --- Kinetics-400 ---------------------------------------------------------------------


def test_kinetics400_has_400_dense_ids():
    seeds = kinetics400_labels()
    assert len(seeds) == 400
    assert [s.source_id for s in seeds] == [str(i) for i in range(400)]
    assert len({s.label for s in seeds}) == 400
    assert seeds[0].label == "abseiling" and seeds[-1].label == "zumba"
    assert all(s.source == "kinetics400" and s.aliases == (s.label,) for s in seeds)
    labels = {s.label for s in seeds}
    assert {"passing American football (in game)", "passing American football (not in game)"} <= labels
    assert "dribbling basketball" in labels


# --- ImageNet-1K ----------------------------------------------------------------------


def test_imagenet_has_1000_synsets_with_all_lemma_names():
    seeds = imagenet_labels()
    assert len(seeds) == 1000
    assert len({s.source_id for s in seeds}) == 1000
    assert all(s.source_id.startswith("n") and len(s.source_id) == 9 for s in seeds)
    assert [s.source_id for s in seeds] == sorted(s.source_id for s in seeds)  # class-index order
    by_id = {s.source_id: s for s in seeds}
    tench = by_id["n01440764"]
    assert tench.label == "tench"
    assert tench.aliases == ("tench", "Tinca tinca")
    assert tench.pos == "noun"
    shark = by_id["n01484850"]
    assert shark.label == "great white shark"
    assert shark.aliases == (
        "great white shark",
        "white shark",
        "man-eater",
        "man-eating shark",
        "Carcharodon carcharias",
    )
    assert all(s.aliases[0] == s.label for s in seeds)


def test_imagenet_two_cranes_are_distinct():
    cranes = [s for s in imagenet_labels() if s.label == "crane"]
    assert sorted(s.source_id for s in cranes) == ["n02012849", "n03126707"]  # the bird, the machine


# --- Kinetics verbs -------------------------------------------------------------------


def test_kinetics_verbs():
    seeds = kinetics_verb_labels()
    verbs = {s.label: s for s in seeds}
    assert len(verbs) == len(seeds) > 100
    assert {"dribble", "play", "swim", "catch", "pass"} <= set(verbs)
    assert all(s.pos == "verb" and s.source == "kinetics-verbs" for s in seeds)
    assert [s.label for s in seeds] == sorted(verbs)
    # lemmas, not -ing forms
    assert "dribbling" not in verbs and "playing" not in verbs
    # source_id names the Kinetics classes the verb comes from
    assert verbs["dribble"].source_id == "dribbling basketball"
    assert "playing guitar" in verbs["play"].source_id.split("; ")
    assert "passing American football (in game)" in verbs["pass"].source_id.split("; ")
    # no word that is not an -ing form of a verb (abseiling is unknown to the dictionary)
    assert "abseil" not in verbs and "abseiling" not in verbs


# --- named sources --------------------------------------------------------------------


def test_named_labels_unknown_source():
    with pytest.raises(InputError, match="unknown label source 'bogus'"):
        named_labels("bogus")
    assert set(NAMED_SOURCES) == {"kinetics400", "imagenet", "verbnet", "kinetics-verbs"}


# --- VerbNet (shared nltk_data) -------------------------------------------------------


@pytest.mark.parametrize(("version", "count"), [("2.1", 3621), ("3.3", 4569)])
def test_verbnet_lemma_counts(nltk_data, monkeypatch, version, count):
    monkeypatch.delenv("NLTK_DATA", raising=False)
    seeds = verbnet_labels(version=version, nltk_data=nltk_data)
    # every VerbNet lemma normalises to something, so none is dropped
    assert len(seeds) == count
    assert len({s.label for s in seeds}) == count
    assert all(s.source == f"verbnet{version}" and s.pos == "verb" and s.source_id for s in seeds)
    assert all("_" not in s.label for s in seeds)
    by_name = {s.label: s for s in seeds}
    assert "eat-39.1" in by_name["eat"].source_id
    assert "dribble" in by_name and "play" in by_name


def test_verbnet_through_nltk_data_env(nltk_data, monkeypatch):
    monkeypatch.setenv("NLTK_DATA", str(nltk_data))
    assert len(verbnet_labels(version="2.1")) == 3621


def test_verbnet_does_not_leave_its_folder_on_nltk_path(nltk_data, monkeypatch):
    """nltk.data.path is process-global: a folder given once must not answer later calls."""
    monkeypatch.delenv("NLTK_DATA", raising=False)
    before = list(nltk.data.path)
    verbnet_labels(version="2.1", nltk_data=nltk_data)
    assert nltk.data.path == before
    assert str(nltk_data) not in nltk.data.path


@pytest.fixture
def no_nltk_data(tmp_path, monkeypatch):
    """An empty NLTK data folder, NLTK_DATA unset and no other folder on NLTK's path."""
    empty = tmp_path / "empty_nltk_data"
    empty.mkdir()
    monkeypatch.delenv("NLTK_DATA", raising=False)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    return empty


@pytest.mark.parametrize(("version", "corpus"), [("2.1", "verbnet"), ("3.3", "verbnet3")])
def test_verbnet_missing_corpus(no_nltk_data, version, corpus):
    with pytest.raises(InputError) as info:
        verbnet_labels(version=version, nltk_data=no_nltk_data)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"VerbNet {version}" in msg and str(no_nltk_data) in msg
    assert f"python -m nltk.downloader -d DIR {corpus}" in msg
    assert "--nltk-data" in msg and "NLTK_DATA" in msg


def test_verbnet_missing_corpus_after_a_successful_load(nltk_data, no_nltk_data):
    """Loading from the shared folder first must not make an empty folder look complete."""
    assert verbnet_labels(version="3.3", nltk_data=nltk_data)
    with pytest.raises(InputError, match="not found"):
        verbnet_labels(version="3.3", nltk_data=no_nltk_data)


def test_verbnet_unknown_version():
    with pytest.raises(InputError, match="unknown VerbNet version '4'"):
        verbnet_labels(version="4")


# --- user files -----------------------------------------------------------------------


def test_file_labels_one_per_line(tmp_path):
    path = write_lines(tmp_path / "labels.txt", ["  burning candle ", "dribbling basketball", "Café"])
    seeds = file_labels(path)
    assert [s.label for s in seeds] == ["burning candle", "dribbling basketball", "Café"]
    assert [s.source_id for s in seeds] == ["labels.txt:1", "labels.txt:2", "labels.txt:3"]
    assert all(s.source == "file" and s.aliases == (s.label,) and s.pos is None for s in seeds)


def test_file_labels_crlf_bom_and_no_final_newline(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffabseiling\r\nzumba\r\nair drumming".encode("utf-8"))
    assert [s.label for s in file_labels(path)] == ["abseiling", "zumba", "air drumming"]


def test_file_labels_csv_column(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("id,key,instances\n0,take,\"['take', 'grab']\"\n1,put,\"['put']\"\n", encoding="utf-8")
    seeds = file_labels(path, column="key")
    assert [s.label for s in seeds] == ["take", "put"]
    assert [s.source_id for s in seeds] == ["classes.csv:2", "classes.csv:3"]
    # without --column a CSV uses its first column
    assert [s.label for s in file_labels(path)] == ["0", "1"]


def test_file_labels_tsv(tmp_path):
    path = tmp_path / "classes.tsv"
    path.write_text("name\tn\nburning candle\t1\ndribbling basketball\t2\n", encoding="utf-8")
    assert [s.label for s in file_labels(path, column="name")] == ["burning candle", "dribbling basketball"]


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b"", ["empty label file"]),
        (b"\n \n\t\n", ["empty label file"]),
        (b"abseiling\n\nzumba\n", [":2:", "blank label"]),
        (b"abseiling\nzumba\nAbseiling\n", [":3:", "duplicate label 'Abseiling'", "first on line 1"]),
        (b"abseiling\nair  drumming\nair drumming\n", [":3:", "first on line 2"]),
        (b"abseiling\n!!!\n", [":2:", "'!!!'", "normalises to nothing"]),
        (b"abseiling\nzumba\ncaf\xe9\n", [":3:", "not valid UTF-8", "0xe9"]),
    ],
)
def test_file_labels_bad_input(tmp_path, content, needles):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        file_labels(path)
    msg = str(info.value)
    assert msg.startswith(str(path))
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg


def test_file_labels_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        file_labels(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is a directory"):
        file_labels(tmp_path)


def test_file_labels_csv_missing_column(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("id,key\n0,take\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        file_labels(path, column="class_key")
    assert str(path) in str(info.value)
    assert "no column 'class_key'" in str(info.value) and "id, key" in str(info.value)


def test_file_labels_csv_blank_and_duplicate_cells(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("id,key\n0,take\n1,\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"classes\.csv:3: blank label"):
        file_labels(path, column="key")
    path.write_text("id,key\n0,take\n1,put\n2,take\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"classes\.csv:4: duplicate label 'take' \(first on line 2\)"):
        file_labels(path, column="key")


# --- aliases and literal hashtags ------------------------------------------------------


def test_file_labels_csv_aliases_and_hashtags_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "label,aliases,hashtags\n"
        "dancing,baile| 舞蹈 |Dancing|BAILE,#Baile|#跳舞|baile|\n"
        "catching a fish,,\n"
        "Café,,#CaféLatte\n",
        encoding="utf-8",
    )
    seeds = file_labels(path)
    assert [s.label for s in seeds] == ["dancing", "catching a fish", "Café"]
    # the label first, then its aliases (the label again and repeats dropped, case-insensitively)
    assert seeds[0].aliases == ("dancing", "baile", "舞蹈")
    assert seeds[0].hashtags == ("baile", "跳舞")  # normalised, deduplicated, never inflected
    assert seeds[1].aliases == ("catching a fish",) and seeds[1].hashtags == ()
    assert seeds[2].hashtags == ("cafélatte",)
    # a plain label list has no literal hashtags
    assert file_labels(write_lines(tmp_path / "l.txt", ["dancing"]))[0].hashtags == ()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("label,aliases\ndancing,baile|!!!\n", [":2:", "alias '!!!'", "normalises to nothing"]),
        ("label,hashtags\ndancing,ok\nzumba,#|x\n", [":3:", "hashtag '#'", "normalises to nothing"]),
    ],
)
def test_file_labels_csv_bad_alias_or_hashtag(tmp_path, content, needles):
    path = tmp_path / "labels.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        file_labels(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    for needle in needles:
        assert needle in str(info.value)


def test_read_aliases_file_and_with_aliases(tmp_path):
    path = tmp_path / "aliases.csv"
    path.write_text(
        "label,alias,hashtag\nDancing,baile,\ndancing,,#跳舞\ndancing,bailar,#Baile\ncatching  a fish,angling,\n",
        encoding="utf-8",
    )
    got = read_aliases_file(path)
    assert got == {"Dancing": (("baile", "bailar"), ("跳舞", "baile")), "catching a fish": (("angling",), ())}
    seeds = file_labels(write_lines(tmp_path / "l.txt", ["dancing", "Catching a Fish", "zumba"]))
    out = with_aliases(seeds, got)
    assert [(s.label, s.aliases, s.hashtags) for s in out] == [
        ("dancing", ("dancing", "baile", "bailar"), ("跳舞", "baile")),
        ("Catching a Fish", ("Catching a Fish", "angling"), ()),
        ("zumba", ("zumba",), ()),
    ]
    # one column of the two is enough
    path.write_text("label,hashtag\nzumba,#ZumbaFitness\n", encoding="utf-8")
    assert read_aliases_file(path) == {"zumba": ((), ("zumbafitness",))}


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("label,alias,hashtag\ndancing,baile,\n,bailar,\n", [":3:", "no label"]),
        ("label,alias,hashtag\ndancing,baile,\nzumba,,\n", [":3:", "'zumba'", "neither an alias nor a hashtag"]),
        ("label,alias\ndancing,!!!\n", [":2:", "'!!!'", "normalises to nothing"]),
        ("name,alias\ndancing,baile\n", ["needs the columns label", "name, alias"]),
        ("label,weight\ndancing,1\n", ["needs the columns label", "label, weight"]),
        ("label,alias\ndancing,baile,extra\n", [":2:", "ragged row"]),
        ("label,alias\n", ["no rows"]),
        ("", ["empty label aliases file"]),
    ],
)
def test_read_aliases_file_bad_rows(tmp_path, content, needles):
    path = tmp_path / "aliases.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_aliases_file(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for needle in needles:
        assert needle in msg


def test_read_aliases_file_missing(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_aliases_file(tmp_path / "nope.csv")


def test_with_aliases_names_the_unknown_labels(tmp_path):
    seeds = file_labels(write_lines(tmp_path / "l.txt", ["dancing"]))
    aliases = {f"label {i}": (("x",), ()) for i in range(7)}
    with pytest.raises(InputError) as info:
        with_aliases(seeds, {"DANCING": (("baile",), ()), **aliases}, source="my_aliases.csv")
    msg = str(info.value)
    assert msg.startswith("my_aliases.csv: 7 label(s) match no label")
    assert "'label 0'" in msg and "'label 4'" in msg and "'label 5'" not in msg and "2 more" in msg
    assert with_aliases(seeds, {}) == seeds


# --- the real label files (shared data) -----------------------------------------------


def test_real_kinetics_label_map_equals_bundled(shared_data):
    seeds = file_labels(shared_data / "labels" / "kinetics400" / "label_map.txt")
    assert [s.label for s in seeds] == [s.label for s in kinetics400_labels()]


def test_real_imagenet_synsets_equal_bundled_order(shared_data):
    seeds = file_labels(shared_data / "labels" / "imagenet" / "imagenet_synsets.txt")
    assert [s.label for s in seeds] == [s.source_id for s in imagenet_labels()]


def test_bundled_imagenet_lemmas_match_timm(shared_data):
    """The bundled WNID -> lemma table is the 1000-class subset of timm's 21k table."""
    lemma_of = {}
    text = (shared_data / "labels" / "imagenet" / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        wnid, _, lemmas = line.partition("\t")
        lemma_of[wnid] = tuple(x.strip() for x in lemmas.split(","))
    for seed in imagenet_labels():
        assert tuple(dict.fromkeys(lemma_of[seed.source_id])) == seed.aliases, seed.source_id


def test_sources_are_independent_of_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(kinetics400_labels()) == 400
    assert os.listdir(tmp_path) == []
