"""Relevant hashtags of a seed label (paper Sec. 3.1 and supplementary A.1).

For a label, take the original and the canonical forms of each word and concatenate
them: ``relevant_hashtags("catching a fish")`` contains catchingafish, catchfish and
fishcatching. Canonical forms come from lemminflect's dictionaries only (no
out-of-vocabulary suffix rules), so every generated form is a real English word: verbs
give their lemma and -ing form, nouns their singular and plural; unknown words
(``abseiling``, ``zumba``) stay as written rather than becoming stubs like ``candl``.

Two rules for word order (``forms``):

* ``"practical"`` (default): the orders people write. The label's own order; for a verb
  phrase also object-then-verb (``fishcatching``, ``headmassage``), never other
  shuffles (no ``creameatice``, ``leftsupmove``); a noun phrase keeps its order
  (``sealion``, never ``lionsea``). Particles and directions (up, out, left) stay as
  written. Compound forms come from a small rule set (docs/labels.md): a possessor is
  optional ("massaging person's head" -> headmassage); a gerund unknown to the
  dictionary that ends in a known one is a compound verb (deadlifting -> deadlift,
  skydiving -> skydive); a verb + particle noun takes a plural (situp -> situps);
  hyphenated words are one word (T-shirt -> tshirt, jack-o'-lantern -> jackolantern).
* ``"paper"``: the paper's rule, every order of the content words (up to ``max_words``
  of them), also for noun phrases, for exact replication.

``max_tags`` caps a label's tags, keeping those closest to the label as written (fewest
changed words, the label's order first); :func:`ranked_hashtags` gives that order.

The same :func:`normalize_hashtag` is applied to the tags of videos in ``match``, so a
video's ``#CandlesBurning`` meets the label's ``candlesburning``.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from typing import Iterable, Iterator, Literal, Sequence

from lemminflect import getAllInflections, getAllInflectionsOOV, getAllLemmas

Pos = Literal["verb", "noun"]
Forms = Literal["practical", "paper"]
FORMS: tuple[str, ...] = ("practical", "paper")

#: Words dropped from permuted hashtags (kept, in place, in the original order). Verb
#: particles (up, off, out, down, over) are not stop words: "take off" is not "take".
STOP_WORDS: frozenset[str] = frozenset(
    """a an the of in on at to for with and or from by into onto as is are be its it his
    her their your my our something someone somebody""".split()
)

#: Nouns whose number never changes in a tag: mass nouns, names of games and sports that
#: are also count nouns of another sense, and zero plurals. The dictionary lists a plural for
#: each (snows, hairs, crickets, grouses), which is rare, another sense or wrong. Drawn from
#: the objects of the Kinetics-400 labels and the common zero-plural animals (docs/labels.md).
UNCOUNTED_NOUNS: frozenset[str] = frozenset(
    "snow ice water sand mud grass hair laundry money wood tea coffee meat oil gas metal furniture "
    "equipment jewelry music homework monopoly poker chess cricket hockey discus poi "
    "grouse sheep deer moose bison salmon trout swine aircraft spacecraft offspring".split()
)
#: Particles and directions: never inflected, never moved before the verb ("zooming out" is
#: not "outszoom"; "moving up left" not "leftsupmove").
PARTICLES: frozenset[str] = frozenset(
    "up down in out off over on away back around through along about left right forward backward backwards".split()
)

_POSSESSIVE = re.compile(r"([^\W_]+)['\u2018\u2019\u02bc`]s\b|([^\W_]+s)['\u2018\u2019\u02bc`](?!\w)")
_HYPHEN = re.compile(r"(?<=\w)['\u2018\u2019\u02bc`]?-['\u2018\u2019\u02bc`]?(?=\w)")
#: Apostrophes of every kind (dropped from labels, and from caption words in match).
APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`]")
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
    text = _HYPHEN.sub("", unicodedata.normalize("NFKC", text))  # T-shirt, jack-o'-lantern: one word
    text = APOSTROPHES.sub("", text)
    text = _CAMEL.sub(" ", text)
    return [normalize_hashtag(w) for w in _WORD.findall(text) if normalize_hashtag(w)]


def label_words(label: str) -> tuple[list[str], list[str]]:
    """Split a label into its main words and its qualifier words (text in parentheses).

    CamelCase (UCF101 ``ApplyEyeMakeup``), underscores (HMDB51 ``brush_hair``) and
    slashes separate words; a hyphenated word is one word (``T-shirt`` -> ``tshirt``).
    """
    qualifier = [w for m in _PARENS.finditer(label) for w in _words(m.group(1))]
    main = _words(_PARENS.sub(" ", label))
    return main, qualifier


def possessor_words(label: str) -> set[str]:
    """Normalised words that are possessors in the label ("person's", "players'"): optional in tags."""
    text = _PARENS.sub(" ", unicodedata.normalize("NFKC", label))
    return {normalize_hashtag(m.group(0)) for m in _POSSESSIVE.finditer(text)}


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


def noun_lemma(word: str) -> tuple[str, ...]:
    """The word's one noun lemma: the dictionary's first, unless that is also the word's verb
    lemma and another noun lemma is not ("leaves" -> leaf, not leave)."""
    lemmas = _lemmas(word)
    nouns = lemmas.get("NOUN", ())
    own = [n for n in nouns if n not in lemmas.get("VERB", ())]
    return (own[0],) if nouns and nouns[0] in lemmas.get("VERB", ()) and own else nouns[:1]


def _plural(lemma: str) -> tuple[str, ...]:
    """One plural: the regular -s form when the dictionary lists it (juncos, not juncoes), else its first."""
    if lemma in UNCOUNTED_NOUNS:  # snow, grouse: no snows, grouses
        return ()
    plurals = _inflections(lemma, "NOUN").get("NNS", ())
    if plurals[:1] == (lemma + "es",) and lemma + "s" in plurals:
        return (lemma + "s",)  # juncos, not juncoes; but leaves, not leafs
    return plurals[:1]


@lru_cache(maxsize=200_000)
def compound_verb_lemma(word: str) -> str | None:
    """The compound verb of a gerund the dictionary does not know: ``deadlifting`` -> ``deadlift``.

    The word must end in a known verb's -ing form of 5+ letters after a prefix of 2+
    letters (dead + lifting, sky + diving, break + dancing, un + boxing); the longest
    such ending wins. None for known gerunds and for words with no such ending
    (abseiling, snowmobiling).
    """
    if not word.endswith("ing") or verb_lemma_of_gerund(word) is not None or "VERB" in _lemmas(word):
        return None
    for k in range(2, len(word) - 4):
        lemma = verb_lemma_of_gerund(word[k:])
        if lemma is not None:
            return word[:k] + lemma
    return None


def _oov_gerund(word: str) -> tuple[str, ...]:
    """The -ing form of a verb lemminflect does not know, by its regular rules (equilibrating)."""
    if _lemmas(word) or word.endswith("ing"):
        return ()
    return tuple(g for g in getAllInflectionsOOV(word, "VERB").get("VBG", ())[:1] if g.isalnum())


def particle_noun_plural(word: str) -> str | None:
    """Plural of a verb + particle noun the dictionary does not know: situp -> situps, pushup -> pushups."""
    if _lemmas(word):
        return None
    for particle in ("up", "out", "off", "down", "over"):
        head = word[: -len(particle)]
        if word.endswith(particle) and len(head) >= 2 and "VERB" in _lemmas(head):
            return word + "s"
    return None


@lru_cache(maxsize=200_000)
def compound_noun_plural(word: str) -> str | None:
    """Plural of a compound noun the dictionary does not know, from its last known noun of 3+
    letters: tshirt -> tshirts, jackolantern -> jackolanterns."""
    if _lemmas(word):
        return None
    for k in range(1, len(word) - 2):
        tail = word[k:]
        if tail in _lemmas(tail).get("NOUN", ()):
            plural = _plural(tail)
            return word[:k] + plural[0] if plural and plural[0] != tail else None
    return None


def word_forms(word: str, pos: Pos | None = None) -> tuple[str, ...]:
    """Original and canonical forms of one normalised word, the original first.

    ``pos="verb"``: original, lemma and -ing form. ``pos="noun"``: original, singular and
    plural. ``None``: a verb's -ing form is treated as a verb, anything else as written.
    Only dictionary forms are produced, never out-of-vocabulary guesses.
    """
    forms = [word]
    compound = compound_verb_lemma(word)
    if compound is not None and pos != "noun":
        return (word, compound)
    plural = particle_noun_plural(word) or (compound_noun_plural(word) if pos == "noun" else None)
    if plural is not None and pos != "verb":
        return (word, plural)
    if word in PARTICLES and pos is None:
        return (word,)
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
        lemmas = noun_lemma(word)  # "cookie", not also "cooky"
        for lemma in lemmas:
            forms.append(lemma)
            forms.extend(_plural(lemma))  # "skis", not also "skiis"
    return tuple(dict.fromkeys(f for f in forms if f.isalnum()))


def canonical_word(word: str, pos: Pos | None = None) -> str:
    """The canonical form of one word: verb lemma for verbs (and gerunds), singular for nouns."""
    compound = compound_verb_lemma(word)
    if compound is not None and pos != "noun":
        return compound
    if pos is None:
        return verb_lemma_of_gerund(word) or word
    lemmas = _lemmas(word).get("VERB", ()) if pos == "verb" else noun_lemma(word)
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
            or compound_verb_lemma(words[first]) is not None
            or set(lemmas) == {"VERB"}
            # "burn candles": an imperative first word when the label has no -ing verb; not the
            # modifier of an activity's name ("long jump", "hammer throw", "front raises")
            or (
                no_gerund
                and len(content) > 1
                and words[first] in lemmas.get("VERB", ())
                and "ADJ" not in lemmas
                and not last_is_action_noun
            )
        ):
            out[first] = "verb"
        if last != first or out[first] is None:
            if words[last] in PARTICLES:
                pass
            elif particle_noun_plural(words[last]) is not None:
                out[last] = "noun"
            elif verb_lemma_of_gerund(words[last]) is None and _lemmas(words[last]).get("NOUN"):
                out[last] = "noun"
            elif out[first] is None:  # object-verbing order: "basketball dribbling"
                out[last] = "verb"
        if "verb" not in out:  # a gerund inside: "baby waking up"
            inner = [i for i in content[1:-1] if verb_lemma_of_gerund(words[i]) is not None]
            if len(inner) == 1:
                out[inner[0]] = "verb"
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
    """Forms of a word in its role: the head verb and head noun inflect, modifiers and
    particles stay as written ("dining table" is not "dine table", "long jump" not
    "longing jump", "zooming out" not "zooming outs")."""
    if word in PARTICLES:
        return (word,)
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
                split += [alt[: i - 1] + [alt[i - 1]] + alt[i + 2 :], alt[: i - 1] + [alt[i + 1]] + alt[i + 2 :]]
        if split == alternatives:
            return alternatives
        alternatives = split


def relevant_hashtags(
    label: str, *, pos: Pos | None = None, max_words: int = 3, forms: Forms = "practical", max_tags: int | None = None
) -> list[str]:
    """All relevant hashtags of a seed label, sorted (at most ``max_tags`` of them).

    For each word its original and canonical forms, concatenated in the label's order
    with stop words and without them, and in the other orders ``forms`` allows (see the
    module docstring); the paper's every-order rule applies to labels of at most
    ``max_words`` content words. An "X or Y" label is the union of its alternatives
    (:func:`or_alternatives`): "riding or walking with horse" gives horseriding and
    walkinghorse. Words in parentheses (``(not slalom or crosscountry)``, ``(in game)``)
    qualify the label and make no tags: nobody writes #skiingnotslalomorcrosscountry.
    ``pos`` says whether the label is a verb (VerbNet) or a noun (ImageNet); ``None``
    infers it.
    """
    ranked = ranked_hashtags(label, pos=pos, max_words=max_words, forms=forms)
    return sorted(ranked if max_tags is None else ranked[:max_tags])


def ranked_hashtags(label: str, *, pos: Pos | None = None, max_words: int = 3, forms: Forms = "practical") -> list[str]:
    """The label's hashtags, those closest to the label as written first (the order a cap keeps).

    Rank: how many words differ from the label's own spelling, then the label's order
    before others; ties alphabetical. Alternatives of an "or" label interleave by rank.
    """
    if forms not in FORMS:
        raise ValueError(f"unknown forms rule {forms!r}; choose {' or '.join(FORMS)}")
    main, _qualifier = label_words(label)
    if not main:
        return []
    optional = possessor_words(label) if forms == "practical" else set()
    best: dict[str, tuple[int, int]] = {}
    for words in or_alternatives(main):
        for tag, rank in _alternative_hashtags(words, pos=pos, max_words=max_words, forms=forms, optional=optional):
            if tag and (tag not in best or rank < best[tag]):
                best[tag] = rank
    return sorted(best, key=lambda t: (best[t], t))


def _ranked_concat(
    choices: Sequence[Sequence[str]], order_rank: int, limit: int = 4096, repeats: bool = False
) -> Iterator[tuple[str, tuple[int, int]]]:
    """Concatenations of one form per word, ranked by (words changed + order rank, order rank).

    Without ``repeats``, a word twice in a row is skipped (exercise + exercise ball, once
    "with an" is gone, is not #exerciseexerciseball)."""
    for n, combo in enumerate(itertools.product(*(range(len(c)) for c in choices))):
        if n >= limit:
            return
        parts = [c[i] for c, i in zip(choices, combo)]
        if not repeats and any(a == b for a, b in zip(parts, parts[1:])):
            continue
        changed = sum(1 for i in combo if i)
        yield "".join(parts), (changed + order_rank, order_rank)


def _alternative_hashtags(
    main: Sequence[str], *, pos: Pos | None, max_words: int, forms: Forms, optional: set[str]
) -> Iterator[tuple[str, tuple[int, int]]]:
    if (
        forms == "practical"
        and len(main) == 2
        and main[1] in ("up", "ups")
        and pos is None
        and verb_lemma_of_gerund(main[0]) is None
        and "VERB" in _lemmas(main[0])
    ):
        main = [main[0] + "up"]  # an exercise, one noun: "push up", "pull ups" -> pushup(s), never uppush
    kinds = _word_pos(main, pos)
    word_choices = [_role_forms(w, p) for w, p in zip(main, kinds)]
    if pos == "verb" and len(main) == 1:  # a verb by its source the dictionary lacks (VerbNet's equilibrate)
        word_choices = [word_choices[0] + _oov_gerund(main[0])] if len(word_choices[0]) == 1 else word_choices
    if forms == "paper":
        yield from _ranked_concat(word_choices, 0, repeats=True)  # as written, stop words in place
    else:  # as written, only the verb inflects: catchingafish, catchafish (never catchafishes)
        yield from _ranked_concat(
            [f if k == "verb" else (w,) for f, w, k in zip(word_choices, main, kinds)], 0, repeats=True
        )
    content = [
        (f, w, k)
        for i, (f, w, k) in enumerate(zip(word_choices, main, kinds))
        if w not in STOP_WORDS and not (forms == "practical" and _is_preposition(main, i))
    ]
    if len(content) == 1 and len(main) > 1:
        return  # "turn on" must not yield the bare verb "turn"
    if not content:
        return
    # a word twice in a row only where the label has it ("pooh pooh"), not where dropping
    # stop words made it ("exercising with an exercise ball")
    repeats = forms == "paper" or any(x == y for x, y in zip(main, main[1:]))
    yield from _ranked_concat([f for f, _, _ in content], 0, repeats=repeats)  # catchfish
    if forms == "paper":  # every order of the content words, noun phrases included
        if len(content) <= max_words:
            for order in itertools.permutations([f for f, _, _ in content]):
                yield from _ranked_concat(order, 1, repeats=True)
        return
    # practical: an optional possessor may go ("massaging person's head" -> massaginghead)
    kept = [c for c in content if c[1] not in optional]
    variants = [(content, 1)]
    if 1 < len(kept) < len(content):
        yield from _ranked_concat([f for f, _, _ in kept], 1, repeats=repeats)
        variants.append((kept, 2))
    # object-verbing: the verb (with its particles) moves after its object (fishcatching,
    # headmassage), or before it when the label puts it last ("basketball dribbling")
    for words, rank in variants:
        verbs = [i for i, (_, _, k) in enumerate(words) if k == "verb"]
        if len(verbs) != 1 or len(words) > max_words:
            continue  # long labels keep their order
        v = end = verbs[0]
        while end + 1 < len(words) and words[end + 1][1] in PARTICLES:
            end += 1
        head, rest = words[v : end + 1], words[:v] + words[end + 1 :]
        if not rest or all(w in PARTICLES for _, w, _ in rest):
            continue  # "zooming out" has no object to move
        if v == 0:
            # object first: a plural object only before the -ing form (dogsgrooming, never
            # dogsgroom, which reads as dogs doing it); the lemma takes the singular
            lemma_forms = [f for f in head[0][0] if f == canonical_word(head[0][1], "verb")]
            ing_forms = [f for f in head[0][0] if f not in lemma_forms]
            singular = [((canonical_word(w, "noun"),) if k == "noun" else f, w, k) for f, w, k in rest]
            particles = [f for f, _, _ in head[1:]]
            yield from _ranked_concat([f for f, _, _ in rest] + [ing_forms] + particles, rank, repeats=repeats)
            if not (rest[-1][2] is None and rest[-1][1].endswith("s")):  # cymbals: unknown, maybe plural
                yield from _ranked_concat(
                    [f for f, _, _ in singular] + [lemma_forms] + particles, rank, repeats=repeats
                )
        else:
            yield from _ranked_concat([f for f, _, _ in head + rest], rank, repeats=repeats)


def _is_preposition(words: Sequence[str], i: int) -> bool:
    """A particle followed by a content word is a preposition ("biking through snow"): it goes
    with the stop words, so the object can move (snowbiking), and never travels with the verb."""
    if words[i] not in PARTICLES or i + 1 >= len(words):
        return False
    nxt = words[i + 1]
    return nxt not in PARTICLES and nxt not in STOP_WORDS


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
