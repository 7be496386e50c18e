"""类案参考: similar past cases — the search terms of a description, and how alike a closed
case is to the one on the desk (same category, nearby, similar text)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gridloop_city import haversine_m

# Text longer than this is cut before segmenting: a description is a few sentences, and a
# pasted essay must not cost more than one.
MAX_TEXT = 2000
# Terms kept per text: enough for any real description, and a bound on the query's size.
MAX_TERMS = 64


def _wordlike(word: str) -> bool:
    """A word that carries meaning: letters or digits (any script), not punctuation or
    space."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in word)


def terms(words: Iterable[str]) -> list[str]:
    """Search terms from a segmenter's words (jieba's, or `bigrams`): lower-cased (NFKC, so
    full-width Ｌ and l are one), each once, in order, at most MAX_TERMS; without punctuation,
    and without single characters — in Chinese mostly particles (的, 有, 上) that every
    description shares."""
    out: list[str] = []
    seen: set[str] = set()
    for word in words:
        w = unicodedata.normalize("NFKC", word).strip().lower()
        if len(w) < 2 or not _wordlike(w) or w in seen or any(ch.isspace() for ch in w):
            continue
        seen.add(w)
        out.append(w)
        if len(out) == MAX_TERMS:
            break
    return out


def bigrams(text: str) -> list[str]:
    """Character bigrams of each run of letters and digits (`井盖破损` → 井盖, 盖破, 破损), a
    run of Latin letters and digits being one term (`LED`): the segmenter that needs no
    dictionary, for when jieba is not wanted."""
    runs: list[str] = []
    current = ""
    for ch in unicodedata.normalize("NFKC", text[:MAX_TEXT]):
        if unicodedata.category(ch)[0] not in "LN":
            runs.append(current)
            current = ""
            continue
        if current and current[-1].isascii() != ch.isascii():  # 3号, LED灯: split
            runs.append(current)
            current = ""
        current += ch
    runs.append(current)
    out: list[str] = []
    for run in filter(None, runs):
        if run.isascii():
            out.append(run)
        else:
            out.extend(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
    return out


def tsquery(query_terms: Sequence[str]) -> str | None:
    """The terms as a PostgreSQL tsquery matching any of them (`'井盖' | '破损'`), quoted so
    that no term is read as an operator; None without terms."""
    if not query_terms:
        return None
    quoted = ("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in query_terms)
    return " | ".join(quoted)


def text_similarity(a: Iterable[str], b: Iterable[str]) -> float:
    """How alike two texts are by their terms (Dice: shared terms over all terms), 0 to 1."""
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return 2 * len(sa & sb) / (len(sa) + len(sb))


@dataclass(frozen=True)
class Weights:
    """What counts how much in the ranking (settings `INTAKE_SIMILAR_WEIGHT_*`)."""

    text: float = 0.6
    distance: float = 0.25
    category: float = 0.15


@dataclass(frozen=True)
class Probe:
    """The case on the desk: what the past cases are compared with."""

    case_id: str
    category_code: str | None
    lon: float
    lat: float
    terms: frozenset[str]


@dataclass(frozen=True)
class PastCase:
    """A closed case the repository found near the probe (same category or shared terms)."""

    case_id: str
    category_code: str | None
    lon: float
    lat: float
    terms: frozenset[str]
    reported_at: datetime | None
    closed_at: datetime


@dataclass(frozen=True)
class Match:
    case: PastCase
    score: float
    text: float
    distance_m: float
    same_category: bool

    @property
    def took_s(self) -> float | None:
        """How long it took, reported → closed, in seconds."""
        reported = self.case.reported_at
        return None if reported is None else (self.case.closed_at - reported).total_seconds()


def score(
    probe: Probe, past: PastCase, *, radius_m: float, weights: Weights = Weights()
) -> Match | None:
    """How alike `past` is to `probe`: text similarity, nearness (1 at the same spot, 0 at
    `radius_m`) and the same category, weighted; None when it is the probe itself, beyond
    the radius, or shares neither the category nor a term."""
    if past.case_id == probe.case_id:
        return None
    distance = haversine_m(probe.lon, probe.lat, past.lon, past.lat)
    if distance > radius_m:
        return None
    same = probe.category_code is not None and past.category_code == probe.category_code
    text = text_similarity(probe.terms, past.terms)
    if not same and text == 0.0:
        return None
    near = 1.0 - distance / radius_m if radius_m > 0 else 1.0
    value = weights.text * text + weights.distance * near + weights.category * same
    return Match(past, round(value, 4), round(text, 4), round(distance, 1), same)


def rank(
    probe: Probe,
    candidates: Iterable[PastCase],
    *,
    radius_m: float,
    limit: int,
    weights: Weights = Weights(),
) -> list[Match]:
    """The `limit` most similar past cases, best first; ties go to the most recent closing."""
    matches = [
        m
        for c in candidates
        if (m := score(probe, c, radius_m=radius_m, weights=weights)) is not None
    ]
    matches.sort(key=lambda m: (-m.score, -m.case.closed_at.timestamp(), m.case.case_id))
    return matches[:limit]
