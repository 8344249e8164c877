"""Splitting answers into claims and contexts into sentences, without a model.

A *claim* is a sentence of the answer that states something: list markers are stripped,
list lead-ins ("Here are some reasons:") and fragments of fewer than ``MIN_CLAIM_WORDS``
words are not claims. Splitting happens at line breaks and after ``.``, ``!`` or ``?``
followed by a space and a capital letter, digit, quote or bracket, except after common
abbreviations and initials ("Dr.", "U.S.", "e.g.", "J.").
"""

from __future__ import annotations

import re

__all__ = [
    "MIN_CLAIM_WORDS",
    "STOPWORDS",
    "WORD_TOKEN",
    "content_tokens",
    "split_claims",
    "split_sentences",
]

MIN_CLAIM_WORDS = 3

_ABBREVIATION_TEXT = (
    "mr mrs ms dr prof sr jr st mt ft no nos vs etc e.g i.e cf al fig approx est inc ltd co "
    "corp dept gen gov sen rep jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n "
    "a.m p.m ph.d b.c a.d"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[`]*[A-Z0-9])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•·‣▪]+|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
WORD_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
"""A word: letters and digits (underscores excluded)."""
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just me more most my myself no nor not now of off on once only
    or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves may might must shall upon within without whose whether
    although though however thus therefore hence via per onto"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Function words that carry no claim of their own (English)."""


def _ends_with_abbreviation(text: str) -> bool:
    last = text.rsplit(None, 1)[-1].rstrip(".!?").lower() if text.strip() else ""
    if last in _ABBREVIATIONS:
        return True
    # A single capital letter before the period is an initial ("John F. Kennedy").
    return len(last) == 1 and last.isalpha()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split at line breaks and sentence-final punctuation."""
    sentences: list[str] = []
    for raw_line in text.splitlines():
        line = _LIST_MARKER.sub("", raw_line).strip()
        if not line:
            continue
        start = 0
        pending = ""
        for boundary in _BOUNDARY.finditer(line):
            piece = line[start : boundary.start()]
            start = boundary.end()
            if _ends_with_abbreviation(piece):
                pending += piece + " "
                continue
            sentences.append((pending + piece).strip())
            pending = ""
        tail = (pending + line[start:]).strip()
        if tail:
            sentences.append(tail)
    return [sentence for sentence in sentences if sentence]


def _is_claim(sentence: str) -> bool:
    words = _WORD.findall(sentence)
    if len(words) < MIN_CLAIM_WORDS:
        return False
    # "The main contributors include:" introduces a list; it states nothing by itself.
    return not (sentence.endswith(":") and len(words) <= 12)


def split_claims(answer: str) -> list[str]:
    """The claims of an answer: its sentences that state something (see the module doc)."""
    return [sentence for sentence in split_sentences(answer) if _is_claim(sentence)]


def content_tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` without stopwords (numbers kept)."""
    return [
        token
        for token in (match.group().lower() for match in WORD_TOKEN.finditer(text))
        if token not in STOPWORDS
    ]
