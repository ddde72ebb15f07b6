"""Relevant hashtags of a seed label (paper Sec. 3.1 and supplementary A.1).

For a label, take the original and the canonical forms of each word and concatenate
them in every order: ``relevant_hashtags("catching a fish")`` contains catchingafish,
catchfish and fishcatching. Canonical forms come from lemminflect's dictionaries only
(no out-of-vocabulary suffix rules), so every generated form is a real English word:
verbs give their lemma and -ing form, nouns their singular and plural; unknown words
(``abseiling``, ``zumba``) stay as written rather than becoming stubs like ``candl``.

The same :func:`normalize_hashtag` is applied to the tags of videos in ``match``, so a
video's ``#CandlesBurning`` meets the label's ``candlesburning``.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from typing import Iterable, Literal, Sequence

from lemminflect import getAllInflections, getAllLemmas

Pos = Literal["verb", "noun"]

#: Words dropped from permuted hashtags (kept, in place, in the original order). Verb
#: particles (up, off, out, down, over) are not stop words: "take off" is not "take".
STOP_WORDS: frozenset[str] = frozenset(
    """a an the of in on at to for with and or from by into onto as is are be its it his
    her their your my our something someone somebody""".split()
)

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+")
_PARENS = re.compile(r"[(\[{]([^)\]}]*)[)\]}]")


def normalize_hashtag(text: str) -> str:
    """Normalise one hashtag: NFKC, case-folded, ``#``, punctuation and spaces removed.

    Letters and digits of every script are kept (``#CaféLatte`` -> ``cafélatte``).
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def _words(text: str) -> list[str]:
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text))
    text = _CAMEL.sub(" ", text)
    return [normalize_hashtag(w) for w in _WORD.findall(text) if normalize_hashtag(w)]


def label_words(label: str) -> tuple[list[str], list[str]]:
    """Split a label into its main words and its qualifier words (text in parentheses).

    CamelCase (UCF101 ``ApplyEyeMakeup``), underscores (HMDB51 ``brush_hair``), hyphens
    and slashes separate words.
    """
    qualifier = [w for m in _PARENS.finditer(label) for w in _words(m.group(1))]
    main = _words(_PARENS.sub(" ", label))
    return main, qualifier


@lru_cache(maxsize=200_000)
def _lemmas(word: str) -> dict[str, tuple[str, ...]]:
    return getAllLemmas(word)


@lru_cache(maxsize=200_000)
def _inflections(lemma: str, upos: str) -> dict[str, tuple[str, ...]]:
    return getAllInflections(lemma, upos=upos)


def verb_lemma_of_gerund(word: str) -> str | None:
    """The verb whose -ing form ``word`` is (``dribbling`` -> ``dribble``), else None."""
    for lemma in _lemmas(word).get("VERB", ()):
        if lemma != word and word in _inflections(lemma, "VERB").get("VBG", ()):
            return lemma
    return None


def word_forms(word: str, pos: Pos | None = None) -> tuple[str, ...]:
    """Original and canonical forms of one normalised word, the original first.

    ``pos="verb"``: original, lemma and -ing form. ``pos="noun"``: original, singular and
    plural. ``None``: a verb's -ing form is treated as a verb, anything else as written.
    Only dictionary forms are produced, never out-of-vocabulary guesses.
    """
    forms = [word]
    if pos is None:
        if verb_lemma_of_gerund(word) is None:
            return (word,)
        pos = "verb"
    if pos == "verb":
        # an -ing form goes back to its verb; any other word is a given lemma (VerbNet's "saw",
        # "found", "feed", "moped"), inflected as it is and never re-lemmatised into another
        # verb ("see", "find", "fee", "mope") through a past tense it happens to spell
        lemma = verb_lemma_of_gerund(word) or word
        forms.append(lemma)
        forms.extend(_inflections(lemma, "VERB").get("VBG", ())[:1])  # "tying", not also "tieing"
    else:
        lemmas = _lemmas(word).get("NOUN", ())[:1]  # "cookie", not also "cooky"
        for lemma in lemmas:
            forms.append(lemma)
            forms.extend(_inflections(lemma, "NOUN").get("NNS", ())[:1])  # "skis", not also "skiis"
    return tuple(dict.fromkeys(f for f in forms if f.isalnum()))


def canonical_word(word: str, pos: Pos | None = None) -> str:
    """The canonical form of one word: verb lemma for verbs (and gerunds), singular for nouns."""
    if pos is None:
        return verb_lemma_of_gerund(word) or word
    key = "VERB" if pos == "verb" else "NOUN"
    lemmas = _lemmas(word).get(key, ())
    return lemmas[0] if lemmas else word


def _word_pos(words: Sequence[str], pos: Pos | None) -> list[Pos | None]:
    """Per-word part of speech: a verb label inflects its first word, a noun label its head (last)."""
    content = [i for i, w in enumerate(words) if w not in STOP_WORDS]
    out: list[Pos | None] = [None] * len(words)
    if not content:
        return out
    if pos == "verb":
        out[content[0]] = "verb"
    elif pos == "noun":
        out[content[-1]] = "noun"
    else:
        first, last = content[0], content[-1]
        no_gerund = all(verb_lemma_of_gerund(words[i]) is None for i in content)
        lemmas = _lemmas(words[first])
        last_is_action_noun = words[last] in _lemmas(words[last]).get("VERB", ())  # jump, throw, vault, kick
        if (
            verb_lemma_of_gerund(words[first]) is not None
            or set(lemmas) == {"VERB"}
            # "burn candles": an imperative first word when the label has no -ing verb; not the
            # modifier of an activity's name ("long jump", "hammer throw", "front raises")
            or (no_gerund and len(content) > 1 and words[first] in lemmas.get("VERB", ()) and "ADJ" not in lemmas
                and not last_is_action_noun)
        ):
            out[first] = "verb"
        if last != first or out[first] is None:
            if verb_lemma_of_gerund(words[last]) is None and _lemmas(words[last]).get("NOUN"):
                out[last] = "noun"
            elif out[first] is None:  # object-verbing order: "basketball dribbling"
                out[last] = "verb"
    return out


def _concat(choices: Iterable[Sequence[str]], limit: int) -> list[str]:
    out: list[str] = []
    for combo in itertools.product(*choices):
        out.append("".join(combo))
        if len(out) >= limit:
            break
    return out


def phrase_forms(words: Sequence[str], *, pos: Pos | None = None, limit: int = 256) -> list[str]:
    """Every concatenation of the words' forms in the original order (a noun phrase's forms)."""
    kinds = _word_pos(words, pos)
    return _concat([_role_forms(w, p) for w, p in zip(words, kinds)], limit)


def _role_forms(word: str, kind: Pos | None) -> tuple[str, ...]:
    """Forms of a word in its role: the head verb and head noun inflect, modifiers stay as
    written ("dining table" is not "dine table", "long jump" not "longing jump")."""
    return word_forms(word, kind) if kind is not None else (word,)


def or_alternatives(words: Sequence[str]) -> list[list[str]]:
    """The alternatives of an "X or Y" label, each with the words the two share.

    ``catching or throwing baseball`` -> [catching baseball], [throwing baseball];
    ``playing squash or racquetball`` -> [playing squash], [playing racquetball];
    ``canoeing or kayaking`` -> [canoeing], [kayaking]. "or" joins the single words on its
    two sides (every "or" label of Kinetics-400 has that form); a label without "or", or
    with "or" at an edge, is its own only alternative.
    """
    alternatives = [list(words)]
    while True:
        split = []
        for alt in alternatives:
            i = next((k for k in range(1, len(alt) - 1) if alt[k] == "or"), None)
            if i is None:
                split.append(alt)
            else:
                split += [alt[: i - 1] + [alt[i - 1]] + alt[i + 2:], alt[: i - 1] + [alt[i + 1]] + alt[i + 2:]]
        if split == alternatives:
            return alternatives
        alternatives = split


def relevant_hashtags(label: str, *, pos: Pos | None = None, max_words: int = 3) -> list[str]:
    """All relevant hashtags of a seed label, sorted.

    For each word its original and canonical forms; concatenated in the original order
    with stop words, and in every order of the content words without them when the
    label has at most ``max_words`` content words (longer labels keep their order).
    An "X or Y" label is the union of its alternatives (:func:`or_alternatives`): "riding
    or walking with horse" gives horseriding and walkinghorse. Words in parentheses
    (``(not slalom or crosscountry)``, ``(in game)``) qualify the label and make no tags:
    nobody writes #skiingnotslalomorcrosscountry. ``pos`` says whether the label is a verb
    (VerbNet) or a noun (ImageNet); ``None`` infers it.
    """
    main, _qualifier = label_words(label)
    if not main:
        return []
    tags: set[str] = set()
    for words in or_alternatives(main):
        tags.update(_alternative_hashtags(words, pos=pos, max_words=max_words))
    return sorted(t for t in tags if t)


def _alternative_hashtags(main: Sequence[str], *, pos: Pos | None, max_words: int) -> set[str]:
    tags: set[str] = set()
    kinds = _word_pos(main, pos)
    forms = [_role_forms(w, p) for w, p in zip(main, kinds)]
    tags.update(_concat(forms, 4096))
    content = [f for f, w in zip(forms, main) if w not in STOP_WORDS]
    if len(content) == 1 and len(main) > 1:
        content = []  # "turn on" must not yield the bare verb "turn"
    if "verb" not in kinds:  # a noun phrase keeps its order: sea lion, never lionsea
        if content:
            tags.update(_concat(content, 4096))
    elif content and len(content) <= max_words:
        for order in itertools.permutations(content):
            tags.update(_concat(order, 4096))
    elif content:
        tags.update(_concat(content, 4096))
    return tags


def canonical_label(label: str, *, pos: Pos | None = None) -> str:
    """Canonical form of a label for merging and exact comparison: canonical content words."""
    main, _ = label_words(label)
    kinds = _word_pos(main, pos)
    if pos == "verb" and main:
        kinds = ["verb" if k == "verb" else None for k in kinds]
    content = [canonical_word(w, p) for w, p in zip(main, kinds) if w not in STOP_WORDS]
    if len(content) < 2 and len(main) > 1:  # "turn on" stays "turn on", not "turn"
        content = [canonical_word(w, p) for w, p in zip(main, kinds)]
    return " ".join(content or main)


def verb_noun_hashtags(verb: str, noun: str) -> list[str]:
    """Hashtags of a verb+noun label: verb forms x noun forms, in both orders (supp. A.1).

    ``verb_noun_hashtags("burning", "candle")`` gives exactly burncandle, burncandles,
    burningcandle, burningcandles, candleburn, candleburning, candlesburn, candlesburning.
    """
    verb_words, _ = label_words(verb)
    noun_words, _ = label_words(noun)
    if not verb_words or not noun_words:
        return []
    v_forms = phrase_forms(verb_words, pos="verb")
    n_forms = phrase_forms(noun_words, pos="noun")
    return sorted({v + n for v in v_forms for n in n_forms} | {n + v for v in v_forms for n in n_forms})
