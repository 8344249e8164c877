"""Splitting answers into claims and contexts into sentences, without a model.

A *claim* is an answer sentence that states something (not a lead-in, heading or fragment
under ``MIN_CLAIM_WORDS`` words). Splits: line breaks, inline list markers, ``.!?`` before a
capital, digit, quote or bracket (not after abbreviations or initials); ``strip_markup``
removes Markdown first (docs/answers.md, "The offline method", step 1).
"""

from __future__ import annotations

import itertools
import re

__all__ = [
    "MIN_CLAIM_WORDS",
    "SPLIT_VERSION",
    "STOPWORDS",
    "WORD_TOKEN",
    "content_tokens",
    "split_claims",
    "split_sentences",
    "strip_markup",
]

MIN_CLAIM_WORDS = 3
SPLIT_VERSION = "markdown-1"
"""Changes whenever splitting changes, so cached sentence vectors of a context are redone."""

_ABBREVIATION_TEXT = (
    "mr mrs ms dr prof sr jr st mt ft no nos vs etc e.g i.e cf al fig approx est inc ltd co "
    "corp dept gen gov sen rep jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n "
    "a.m p.m ph.d b.c a.d"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[`]*[A-Z0-9])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•·‣▪]+|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_SETEXT_OR_RULE = re.compile(r"^\s*(?:=+|-{3,}|\*{3,}|_{3,})\s*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)+\|?\s*$")
_CITATION = re.compile(r"\s*(?:\[\^?\d+(?:\s*[,;\u2013-]\s*\^?\d+)*\]|\u3010\d+[^\u3011]*\u3011)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(?<![\w*_~])(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1(?![\w*_~])")
_BOLD_LINE = re.compile(r"^(\*\*|__)(?P<text>[^*_]+?)\1\s*:?\s*$")
_BOLD_LABEL = re.compile(r"^(?P<mark>\*\*|__)[^*_:]{1,60}?(?::\s*(?P=mark)|(?P=mark)\s*:)\s*")
_PLAIN_LABEL = re.compile(r"^(?P<label>(?:[A-Z][\w'&/-]*\s?){1,4}):\s+(?=\S)")
_INLINE_MARKER = re.compile(r"(?:(?<=\s)|^)(\d{1,2})[.)]\s+(?=\S)")
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


def _inline_items(line: str) -> list[tuple[str, bool]]:
    """A line cut at the markers of an inline numbered list (1., 2., 3. in order), each
    piece with whether it is the list's lead-in ("Causes include 1. X 2. Y")."""
    expected = 1
    cuts: list[tuple[int, int]] = []
    for match in _INLINE_MARKER.finditer(line):
        if int(match.group(1)) == expected:
            cuts.append((match.start(), match.end()))
            expected += 1
    if len(cuts) < 2:
        return [(line, False)]
    lead_in = line[: cuts[0][0]].strip()
    pieces = [(lead_in, not lead_in.endswith((".", "!", "?")))]
    for (_, end), (next_start, _) in itertools.pairwise([*cuts, (len(line), len(line))]):
        pieces.append((line[end:next_start].strip(), False))
    return [(piece, lead) for piece, lead in pieces if piece]


def _markup_lines(text: str) -> list[tuple[str, bool]]:
    """(line without markup, is it structure only: a heading or a table header)."""
    lines: list[tuple[str, bool]] = []
    raw_lines = text.splitlines()
    for index, raw_line in enumerate(raw_lines):
        if _SETEXT_OR_RULE.match(raw_line) or _TABLE_SEPARATOR.match(raw_line):
            continue
        following = raw_lines[index + 1] if index + 1 < len(raw_lines) else ""
        heading = bool(_HEADING.match(raw_line)) or bool(
            following.strip() and _SETEXT_OR_RULE.match(following) and "|" not in raw_line
        )
        line = _HEADING.sub("", raw_line)
        if line.strip().startswith("|") or line.count("|") >= 2:
            heading = heading or bool(_TABLE_SEPARATOR.match(following))
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            line = ", ".join(cell for cell in cells if cell)
        line = _CITATION.sub("", line)
        line = _LINK.sub(r"\1", line).replace("`", "")
        listed = bool(_LIST_MARKER.match(line))
        line = _LIST_MARKER.sub("", line).strip()
        bold_line = _BOLD_LINE.match(line)
        if bold_line:
            lines.append((bold_line.group("text").strip(), True))
            continue
        labelled = _BOLD_LABEL.match(line)
        if labelled:
            line = line[labelled.end() :]
        elif listed:
            line = _PLAIN_LABEL.sub("", line)
        for _ in range(2):  # nested emphasis ("***x***" is one match; "**_x_**" two)
            line = _EMPHASIS.sub(r"\2", line)
        lines.extend((item, heading or lead) for item, lead in _inline_items(line.strip()))
    return [(line, heading) for line, heading in lines if line]


def strip_markup(text: str) -> str:
    """``text`` without its Markdown structure (see the module doc), one line per line."""
    return "\n".join(line for line, _ in _markup_lines(text))


def _sentences(text: str) -> list[tuple[str, bool]]:
    sentences: list[tuple[str, bool]] = []
    for line, heading in _markup_lines(text):
        sentences.extend((sentence, heading) for sentence in _line_sentences(line))
    return sentences


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: its Markdown structure removed, split at line breaks, inline
    list markers and sentence-final punctuation."""
    return [sentence for sentence, _ in _sentences(text)]


def _line_sentences(line: str) -> list[str]:
    sentences: list[str] = []
    if line:
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
    return [
        sentence for sentence, heading in _sentences(answer) if not heading and _is_claim(sentence)
    ]


def content_tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` without stopwords (numbers kept)."""
    return [
        token
        for token in (match.group().lower() for match in WORD_TOKEN.finditer(text))
        if token not in STOPWORDS
    ]
