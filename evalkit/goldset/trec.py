"""Import a TREC collection (qrels + topics) as a goldset.

Qrels are trec_eval's ``qid iter docno rel`` lines (whitespace-separated; ``#`` comment
lines skipped). Topics are TREC SGML (``<top> <num> Number: 301 <title> ...
</top>``, with or without closing tags), TREC XML (``<topic number="1"><query>...``) or a
plain ``qid<TAB>text`` file; the form is detected from the content. Only topics that have
judgments are kept, in file order.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from evalkit.goldset._imported import (
    QrelsColumns,
    QrelsRow,
    SourceQuery,
    assemble_imported,
    check_writable_ids,
    qrels_row,
)
from evalkit.goldset._reading import NoticeSink, ProblemLog, iter_text_lines
from evalkit.goldset.model import Goldset
from evalkit.records import Query

__all__ = [
    "TOPIC_FIELDS",
    "TOPIC_READERS",
    "TREC_QRELS_COLUMNS",
    "TREC_QRELS_FILE",
    "TREC_SEPARATORS",
    "TREC_TOPICS_FILE",
    "TopicField",
    "detect_topics_format",
    "load_trec_goldset",
    "read_trec_qrels",
    "read_trec_topics",
    "trec_fields",
    "trec_files",
]

TREC_QRELS_COLUMNS = QrelsColumns(query="qid", doc="docno", grade="rel")

TREC_SEPARATORS = " \t\n\r\x0b\x0c"
"""The characters that separate the fields of a TREC qrels or run line: C's ``isspace``, as
trec_eval reads them (and ``evalkit score``, which splits bytes). Any other character,
a no-break or ideographic space included, belongs to the id it stands in."""

_TREC_FIELD_BREAK = re.compile(f"[{re.escape(TREC_SEPARATORS)}]+")


def trec_fields(line: str) -> list[str]:
    """The fields of a TREC qrels or run line, split as trec_eval splits them."""
    return [field for field in _TREC_FIELD_BREAK.split(line) if field]


TopicField = Literal["title", "desc", "narr"]

TOPIC_FIELDS: Mapping[str, str] = {
    "title": "Topic:",
    "desc": "Description:",
    "narr": "Narrative:",
}
"""SGML topic fields usable as the query text, with the label TREC puts before their text."""

_XML_TOPIC_TAGS: Mapping[str, tuple[str, ...]] = {
    "title": ("query", "title"),
    "desc": ("question", "description", "desc"),
    "narr": ("narrative", "narr"),
}
"""The elements of an XML topic (``<topic number="1"><query>...``, as TREC-COVID, the Web
track and others write them) that hold each query field, in order of preference."""

_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)[^>]*>")
_TOP = re.compile(r"<top>", re.IGNORECASE)
_TOP_END = re.compile(r"</top>", re.IGNORECASE)
_XML_TOPIC = re.compile(r"<topic\b([^>]*)>", re.IGNORECASE)
_XML_TOPIC_END = re.compile(r"</topic\s*>", re.IGNORECASE)
# The opening and closing tag of a topic element, by the element's name.
_TOPIC_ELEMENTS = {"top": (_TOP, _TOP_END), "topic": (_XML_TOPIC, _XML_TOPIC_END)}
_NUMBER_ATTRIBUTE = re.compile(r"""\b(?:number|id)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def load_trec_goldset(
    qrels_path: Path | str,
    topics_path: Path | str,
    *,
    name: str | None = None,
    query_field: TopicField = "title",
    on_notice: NoticeSink | None = None,
) -> Goldset:
    """Load a TREC qrels file and its topics file.

    The query text is the topic's ``query_field`` (SGML topics; default the title).
    ``name`` defaults to the name of the folder holding the qrels. Grades below 0 (-1 is
    trec_eval's judged non-relevant) become 0 and a repeated judgment with the same grade is
    kept once; each such change is reported to ``on_notice`` (default: a warning on the
    ``evalkit.goldset`` logger). Raises ``GoldsetError`` listing every problem otherwise.
    """
    qrels_file = Path(qrels_path)
    topics_file = Path(topics_path)
    problems = ProblemLog()
    queries = read_trec_topics(topics_file, problems=problems, query_field=query_field)
    rows = read_trec_qrels(qrels_file, problems=problems)
    return assemble_imported(
        name=(qrels_file.resolve().parent.name or "trec") if name is None else name,
        source=qrels_file,
        queries=queries,
        queries_path=topics_file,
        rows=rows,
        qrels_path=qrels_file,
        columns=TREC_QRELS_COLUMNS,
        problems=problems,
        on_notice=on_notice,
    )


# What a line of another count of columns probably is.
_COLUMN_HINTS = {
    3: " (3 columns look like BEIR qrels 'query-id corpus-id score': give their folder with "
    "--format beir, or add an iteration column such as 0)",
    6: " (6 columns look like a run file, not qrels)",
}


def read_trec_qrels(path: Path, *, problems: ProblemLog) -> list[QrelsRow]:
    """Read trec_eval qrels lines ``qid iter docno rel``, recording malformed lines."""
    rows: list[QrelsRow] = []
    for line, text in iter_text_lines(path, problems):
        if text.lstrip(TREC_SEPARATORS).startswith("#"):
            continue
        columns = trec_fields(text)
        if len(columns) != 4:
            hint = _COLUMN_HINTS.get(len(columns), "")
            problems.add(
                f"expected 4 whitespace-separated columns 'qid iter docno rel', "
                f"got {len(columns)}{hint}",
                path=path,
                line=line,
            )
            continue
        query_id, _iteration, doc_id, grade = columns
        row = qrels_row(problems, path, line, (query_id, doc_id, grade), columns=TREC_QRELS_COLUMNS)
        if row is not None:
            rows.append(row)
    return rows


def detect_topics_format(text: str) -> str:
    """``"sgml"`` when the text holds a ``<top>`` element, ``"xml"`` when it holds a
    ``<topic number="...">`` one, else ``"tsv"``."""
    if _TOP.search(text):
        return "sgml"
    return "xml" if _XML_TOPIC.search(text) else "tsv"


def read_trec_topics(
    path: Path, *, problems: ProblemLog, query_field: TopicField = "title"
) -> list[SourceQuery]:
    """Read a topics file in TREC SGML, TREC XML or ``qid<TAB>text`` form (detected)."""
    lines = list(iter_text_lines(path, problems, keep_undecodable=True))
    text = "\n".join(line_text for _, line_text in lines)
    reader = TOPIC_READERS[detect_topics_format(text)]
    topics = reader(path, lines, problems, query_field)
    if not lines and path.exists() and not problems.unread(path):
        problems.add("holds no topics", path=path)
    return topics


def _read_tsv_topics(
    path: Path,
    lines: list[tuple[int, str]],
    problems: ProblemLog,
    query_field: TopicField,
) -> list[SourceQuery]:
    topics: list[SourceQuery] = []
    for line, line_text in lines:
        query_id, tab, query_text = line_text.partition("\t")
        if not tab:
            problems.add(
                "expected 'qid<TAB>text' (no tab found); separate the id from the text with "
                "a tab, or use TREC <top> topics",
                path=path,
                line=line,
            )
            continue
        query_id, query_text = query_id.strip(), _WHITESPACE.sub(" ", query_text).strip()
        if not query_id or not query_text:
            problems.add("is empty", path=path, line=line, field="qid" if not query_id else "text")
            continue
        topics.append(
            SourceQuery(line=line, query=Query(id=query_id, text=query_text), id_field="qid")
        )
    return topics


def _read_topic_elements(
    path: Path,
    lines: list[tuple[int, str]],
    problems: ProblemLog,
    query_field: TopicField,
    *,
    tag: str,
) -> list[SourceQuery]:
    """The topics of SGML ``<top>`` or XML ``<topic>`` elements; one without an id or
    query text is a problem."""
    sgml = tag == "top"
    id_field = "num" if sgml else "number"
    text_tags = (query_field,) if sgml else _XML_TOPIC_TAGS[query_field]
    topics: list[SourceQuery] = []
    for line, attributes, block in _topic_blocks(path, lines, problems, tag=tag):
        fields = _sgml_fields(block)
        if sgml:
            query_id = _strip_label(fields.get("num", ""), "Number:")
            query_text = _strip_label(fields.get(query_field, ""), TOPIC_FIELDS[query_field])
        else:
            number = _NUMBER_ATTRIBUTE.search(attributes)
            query_id = html.unescape(next(filter(None, number.groups()), "")) if number else ""
            query_text = next((fields[t] for t in text_tags if fields.get(t, "").strip()), "")
            query_id, query_text = query_id.strip(), html.unescape(query_text)
            query_text = _WHITESPACE.sub(" ", query_text).strip()
        if not query_id:
            problems.add(_NO_TOPIC_ID[tag], path=path, line=line, field=id_field)
            continue
        if not query_text:
            problems.add(
                f"topic {query_id} has no <{'> or <'.join(text_tags)}> text",
                path=path,
                line=line,
                field=text_tags[0],
            )
            continue
        topics.append(
            SourceQuery(line=line, query=Query(id=query_id, text=query_text), id_field=id_field)
        )
    return topics


_NO_TOPIC_ID = {
    "top": "topic has no <num>",
    "topic": 'topic has no number attribute (<topic number="...">)',
}


def _topic_blocks(
    path: Path,
    lines: list[tuple[int, str]],
    problems: ProblemLog,
    *,
    tag: str,
) -> Iterator[tuple[int, str, str]]:
    """Each topic element's line, the text inside its opening tag (its attributes) and its
    content; one not closed before the next opens is a problem."""
    opening, closing = _TOPIC_ELEMENTS[tag]
    text = "\n".join(line_text for _, line_text in lines)
    starts = list(opening.finditer(text))
    newlines_before, counted_to = 0, 0
    for index, start in enumerate(starts):
        newlines_before += text.count("\n", counted_to, start.start())
        counted_to = start.start()
        line = lines[newlines_before][0]
        limit = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        end = closing.search(text, start.end(), limit)
        if end is None:
            problems.add(
                f"this <{tag}> has no </{tag}> before the next topic", path=path, line=line
            )
            continue
        yield line, start.group(1) if opening.groups else "", text[start.end() : end.start()]


def _sgml_fields(block: str) -> dict[str, str]:
    """Each opening tag's text runs to the next tag, so closing tags are optional."""
    fields: dict[str, str] = {}
    tags = list(_TAG.finditer(block))
    for index, tag in enumerate(tags):
        if tag.group(1):
            continue
        end = tags[index + 1].start() if index + 1 < len(tags) else len(block)
        fields.setdefault(tag.group(2).lower(), block[tag.end() : end])
    return fields


def _strip_label(value: str, label: str) -> str:
    collapsed = _WHITESPACE.sub(" ", value).strip()
    if collapsed.lower().startswith(label.lower()):
        collapsed = collapsed[len(label) :].strip()
    return collapsed


TopicReader = Callable[[Path, list[tuple[int, str]], ProblemLog, TopicField], list[SourceQuery]]

TOPIC_READERS: Mapping[str, TopicReader] = {
    "sgml": functools.partial(_read_topic_elements, tag="top"),
    "xml": functools.partial(_read_topic_elements, tag="topic"),
    "tsv": _read_tsv_topics,
}
"""Topic file readers by the form ``detect_topics_format`` names."""


TREC_QRELS_FILE = "qrels.txt"
TREC_TOPICS_FILE = "topics.xml"


def trec_files(goldset: Goldset) -> dict[str, str]:
    """``goldset`` as a TREC collection, the text of each file by its name: ``qrels.txt``
    (``qid 0 docno rel``) and ``topics.xml`` (TREC XML topics), in the goldset's order.

    Ids holding a field separator, or query ids starting with ``#`` (a comment line), raise
    ``GoldsetError``.
    """
    check_writable_ids(
        goldset, "trec", TREC_SEPARATORS, why="white space (a field separator)", comment="#"
    )
    qrels = "".join(f"{j.query_id} 0 {j.doc_id} {j.relevance}\n" for j in goldset.judgments)
    topics = "".join(
        f'<topic number="{html.escape(query.id)}">\n'
        f"  <query>{html.escape(query.text, quote=False)}</query>\n"
        "</topic>\n"
        for query in goldset.queries
    )
    return {TREC_QRELS_FILE: qrels, TREC_TOPICS_FILE: f"<topics>\n{topics}</topics>\n"}
