"""Importing TREC qrels with SGML or TSV topics."""

from __future__ import annotations

import gzip
import logging
import os
import threading
from pathlib import Path

import pytest

from evalkit.cli import invoke
from evalkit.errors import GoldsetError
from evalkit.goldset import goldset_version, load_trec_goldset
from evalkit.goldset.trec import TopicField, detect_topics_format
from evalkit.records import Judgment, Query

FIXTURE = Path(__file__).parent / "data" / "goldset" / "trec_tiny"
QRELS = FIXTURE / "qrels"

EXPECTED_QUERIES = (
    Query(id="401", text="foreign minorities, Germany"),
    Query(id="402", text="behavioral genetics"),
)
EXPECTED_JUDGMENTS = (
    Judgment("401", "FT911-3", 1),
    Judgment("401", "FT911-7", 0),
    Judgment("401", "LA0101-12", 0),
    Judgment("402", "FT911-3", 2),
    Judgment("402", "FBIS3-1", 0),
)


def locations(error: GoldsetError) -> list[tuple[str, int | None, str | None]]:
    return [(Path(p.path).name if p.path else "", p.line, p.field) for p in error.problems]


def test_sgml_topics_without_closing_tags() -> None:
    notices: list[str] = []

    goldset = load_trec_goldset(QRELS, FIXTURE / "topics.sgml", on_notice=notices.append)

    assert goldset.name == "trec_tiny"
    assert goldset.queries == EXPECTED_QUERIES
    assert goldset.judgments == EXPECTED_JUDGMENTS
    assert goldset.version == goldset_version(EXPECTED_QUERIES, EXPECTED_JUDGMENTS)
    assert notices == [
        f"{FIXTURE / 'topics.sgml'}: 1 of its 3 queries have no judgment in qrels and were "
        "left out, as BEIR and trec_eval leave them out",
        f"{QRELS}: 2 judgment(s) graded below 0 (first on line 4) were imported as 0, judged "
        "not relevant, as trec_eval treats them",
    ]


def test_tsv_topics_give_the_same_goldset() -> None:
    sgml = load_trec_goldset(QRELS, FIXTURE / "topics.sgml", on_notice=lambda _: None)
    tsv = load_trec_goldset(QRELS, FIXTURE / "topics.tsv", on_notice=lambda _: None)

    assert tsv.queries == sgml.queries
    assert tsv.version == sgml.version


def test_description_as_query_text() -> None:
    goldset = load_trec_goldset(
        QRELS, FIXTURE / "topics.sgml", query_field="desc", on_notice=lambda _: None
    )

    assert goldset.queries[0].text == (
        "What language and cultural differences impede the integration of foreign "
        "minorities in Germany?"
    )


def test_default_notice_goes_to_the_goldset_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="evalkit.goldset"):
        load_trec_goldset(QRELS, FIXTURE / "topics.tsv", name="robust")

    (record,) = caplog.records
    assert record.name == "evalkit.goldset"
    assert "graded below 0" in record.getMessage()


def test_closed_tag_topics_as_in_vaswani(tmp_path: Path) -> None:
    topics = tmp_path / "topics.trec"
    topics.write_text(
        "<top>\n<num>1</num><title>\nMEASUREMENT OF DIELECTRIC\nCONSTANT\n</title>\n</top>\n"
        "<TOP><NUM>2</NUM><TITLE>waveguide radiation</TITLE></TOP>\n",
        encoding="utf-8",
    )
    qrels = tmp_path / "qrels"
    qrels.write_text("1 0 1239 1\n2 0 7 1\n", encoding="utf-8")

    goldset = load_trec_goldset(qrels, topics)

    assert goldset.queries == (
        Query(id="1", text="MEASUREMENT OF DIELECTRIC CONSTANT"),
        Query(id="2", text="waveguide radiation"),
    )


def test_topic_format_detection() -> None:
    assert detect_topics_format("<top>\n<num> Number: 1\n</top>") == "sgml"
    assert detect_topics_format("1\tword <b>bold</b>\n") == "tsv"
    assert detect_topics_format('<topics>\n<topic number="1">\n</topics>') == "xml"


TOPIC_PROBLEMS = {
    "sgml: topic without num": (
        "<top>\n<num> Number: 401\n<title> a\n</top>\n<top>\n<title> b\n</top>\n",
        [("topics", 5, "num")],
    ),
    "sgml: topic without title": (
        "<top>\n<num> Number: 401\n<title> a\n</top>\n\n<top> <num> 402 <desc> only\n</top>\n",
        [("topics", 6, "title")],
    ),
    "sgml: unclosed topic": (
        "<top>\n<num> Number: 401\n<title> a\n<top>\n<num> 402\n<title> b\n</top>\n",
        [("topics", 1, None), ("qrels", 1, "qid")],
    ),
    "sgml: duplicate topic": (
        "<top><num>401</num><title>a</title></top>\n<top><num>401</num><title>b</title></top>\n",
        [("topics", 2, "num")],
    ),
    "xml: topic without number": (
        '<topics>\n<topic number="401"><query>a</query></topic>\n<topic>\n<query>b</query>\n'
        "</topic>\n</topics>\n",
        [("topics", 3, "number")],
    ),
    "xml: topic without query": (
        '<topics>\n<topic number="401">\n<question>only</question>\n</topic>\n</topics>\n',
        [("topics", 2, "query"), ("qrels", 1, "qid")],
    ),
    "xml: unclosed topic": (
        '<topic number="401"><query>a</query>\n<topic number="402"><query>b</query></topic>\n',
        [("topics", 1, None), ("qrels", 1, "qid")],
    ),
    "tsv: no tab": ("401\tforeign minorities\n402 behavioral genetics\n", [("topics", 2, None)]),
    "tsv: empty text": ("401\tforeign minorities\n402\t \n", [("topics", 2, "text")]),
    "tsv: duplicate topic": ("401\ta\n401\tb\n", [("topics", 2, "qid")]),
}


@pytest.mark.parametrize(
    ("topics", "expected"), list(TOPIC_PROBLEMS.values()), ids=list(TOPIC_PROBLEMS)
)
def test_topic_problems(
    tmp_path: Path, topics: str, expected: list[tuple[str, int | None, str | None]]
) -> None:
    (tmp_path / "topics").write_text(topics, encoding="utf-8")
    (tmp_path / "qrels").write_text("401 0 d1 1\n", encoding="utf-8")

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(tmp_path / "qrels", tmp_path / "topics")

    assert locations(caught.value) == expected


QRELS_PROBLEMS = {
    "three columns": ("401 d1 1\n", [("qrels", 1, None)]),
    "grade not an integer": ("401 0 d1 1\n401 0 d2 high\n", [("qrels", 2, "rel")]),
    "conflicting grades": ("401 0 d1 1\n# note\n401 0 d1 2\n", [("qrels", 3, "rel")]),
    "topic not in topics file": ("401 0 d1 1\n999 0 d1 1\n", [("qrels", 2, "qid")]),
    "only comments": ("# nothing judged yet\n", [("qrels", None, None)]),
    # int() reads "1_0" as 10, which trec_eval reads as 1, and "２" as 2.
    "grade with an underscore": ("401 0 d1 1_0\n", [("qrels", 1, "rel")]),
    "grade in full-width digits": ("401 0 d1 \uff12\n", [("qrels", 1, "rel")]),
}


@pytest.mark.parametrize(
    ("qrels", "expected"), list(QRELS_PROBLEMS.values()), ids=list(QRELS_PROBLEMS)
)
def test_qrels_problems(
    tmp_path: Path, qrels: str, expected: list[tuple[str, int | None, str | None]]
) -> None:
    (tmp_path / "qrels").write_text(qrels, encoding="utf-8")

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(tmp_path / "qrels", FIXTURE / "topics.tsv")

    assert locations(caught.value) == expected


def test_a_run_file_given_as_qrels_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("401 Q0 d1 1 12.5 bm25\n", encoding="utf-8")

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(tmp_path / "run", FIXTURE / "topics.tsv")

    assert "look like a run file" in caught.value.problems[0].detail


def test_beir_qrels_given_as_trec_qrels_get_a_hint(tmp_path: Path) -> None:
    (tmp_path / "test.tsv").write_text("401\tFT911-3\t1\n", encoding="utf-8")

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(tmp_path / "test.tsv", FIXTURE / "topics.tsv")

    assert caught.value.problems[0].detail == (
        "expected 4 whitespace-separated columns 'qid iter docno rel', got 3 (3 columns look "
        "like BEIR qrels 'query-id corpus-id score': give their folder with --format beir, or "
        "add an iteration column such as 0)"
    )


def test_missing_topics_file(tmp_path: Path) -> None:
    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(QRELS, tmp_path / "nope.trec")

    assert locations(caught.value)[0] == ("nope.trec", None, None)


def test_qrels_fields_split_as_trec_eval_splits_them(tmp_path: Path) -> None:
    """C's isspace separates fields (a vertical tab too); a no-break or ideographic space
    is part of the id, as `evalkit score` and trec_eval read it."""
    (tmp_path / "qrels").write_text(
        "401\x0b0 FT911\u00a03 1\n401 0 LA\u30000101 2\n401 0 doc\u00a0 1\n", encoding="utf-8"
    )
    goldset = load_trec_goldset(tmp_path / "qrels", FIXTURE / "topics.tsv")
    assert goldset.judgments == (
        Judgment("401", "FT911\u00a03", 1),
        Judgment("401", "LA\u30000101", 2),
        Judgment("401", "doc\u00a0", 1),
    )


def test_a_signed_grade_is_read_as_trec_eval_reads_it(tmp_path: Path) -> None:
    (tmp_path / "qrels").write_text("401 0 d1 +1\n401 0 d2 -0\n", encoding="utf-8")

    goldset = load_trec_goldset(tmp_path / "qrels", FIXTURE / "topics.tsv")

    assert goldset.judgments == (Judgment("401", "d1", 1), Judgment("401", "d2", 0))


def test_compressed_qrels_are_one_problem_saying_to_decompress(tmp_path: Path) -> None:
    """Read as text, gzip data was a "not valid UTF-8" problem per line and "save the file as
    UTF-8", or a number of columns, depending on its bytes."""
    (tmp_path / "qrels.gz").write_bytes(gzip.compress(QRELS.read_bytes()))

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(tmp_path / "qrels.gz", FIXTURE / "topics.tsv")

    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (str(tmp_path / "qrels.gz"), None)
    assert problem.detail == (
        "holds gzip-compressed data, not text: evalkit reads uncompressed UTF-8 files, so "
        "decompress it first (gunzip -c qrels.gz > qrels) and give the result"
    )


def test_unreadable_topics_do_not_make_every_judged_query_unknown(tmp_path: Path) -> None:
    topics = tmp_path / "topics.tsv"
    topics.write_bytes(gzip.compress((FIXTURE / "topics.tsv").read_bytes()))

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(QRELS, topics)

    assert locations(caught.value) == [("topics.tsv", None, None)]
    assert "gunzip -c topics.tsv > FILE" in caught.value.problems[0].detail


def test_a_topic_line_that_is_not_utf8_is_the_only_problem(tmp_path: Path) -> None:
    """The line was dropped before the SGML was parsed: its topic was then said to have no
    <title> and its judgments to be for a query the topics file does not have."""
    topics = tmp_path / "topics.trec"
    topics.write_bytes(
        b"<top>\n<num> Number: 401\n<title> foreign minorities, Germany\n</top>\n"
        b"<top>\n<num> Number: 402\n<title> behavioral genetics caf\xe9\n</top>\n"
    )

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(QRELS, topics)

    assert locations(caught.value) == [("topics.trec", 7, None)]
    assert "not valid UTF-8" in caught.value.problems[0].detail


def test_import_error_points_at_goldset_validate_not_at_format_json(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--format json` names the source format in `goldset import`: following the hint gave
    "unknown goldset format 'json'"."""
    (tmp_path / "qrels").write_text("401 0 d1 high\n", encoding="utf-8")

    code = invoke(
        [
            "goldset",
            "import",
            "--format",
            "trec",
            str(tmp_path / "qrels"),
            "--topics",
            str(FIXTURE / "topics.tsv"),
            "--name",
            "robust",
        ]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert "--format json" not in err
    assert err.rstrip().endswith(
        "Fix them and load again; `evalkit goldset validate` with the same --format and "
        "--split or --topics lists every problem."
    )


TREC_COVID_TOPICS = """<topics task="COVIDSearch" batch="5">
  <topic number="401">
    <query>coronavirus origin</query>
    <question>what is the origin of COVID-19 &amp; SARS?</question>
    <narrative>seeking range of information
      about the SARS-CoV-2 virus's origin</narrative>
  </topic>
  <topic number="402" type="faceted">
    <query>coronavirus response to weather changes</query>
    <description>how does the coronavirus respond to the weather</description>
    <subtopic number="1" type="nav">a subtopic is not the description</subtopic>
  </topic>
</topics>
"""


def trec_covid(tmp_path: Path) -> tuple[Path, Path]:
    topics = tmp_path / "topics-rnd5.xml"
    topics.write_text(TREC_COVID_TOPICS, encoding="utf-8")
    qrels = tmp_path / "qrels"
    qrels.write_text("401 0.5 d1 2\n402 4.5 d2 1\n", encoding="utf-8")
    return qrels, topics


@pytest.mark.parametrize(
    ("query_field", "texts"),
    [
        ("title", ["coronavirus origin", "coronavirus response to weather changes"]),
        (
            "desc",
            [
                "what is the origin of COVID-19 & SARS?",
                "how does the coronavirus respond to the weather",
            ],
        ),
    ],
)
def test_xml_topics_as_trec_covid_and_the_web_track_write_them(
    tmp_path: Path, query_field: TopicField, texts: list[str]
) -> None:
    """They were read as qid<TAB>text lines: one "no tab found" problem per line."""
    qrels, topics = trec_covid(tmp_path)

    goldset = load_trec_goldset(qrels, topics, query_field=query_field)

    assert [query.id for query in goldset.queries] == ["401", "402"]
    assert [query.text for query in goldset.queries] == texts
    assert goldset.judgments == (Judgment("401", "d1", 2), Judgment("402", "d2", 1))


def test_an_xml_topic_without_the_chosen_field_names_it(tmp_path: Path) -> None:
    qrels, topics = trec_covid(tmp_path)

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(qrels, topics, query_field="narr")

    assert locations(caught.value) == [("topics-rnd5.xml", 8, "narrative"), ("qrels", 2, "qid")]
    assert caught.value.problems[0].detail == "topic 402 has no <narrative> or <narr> text"


def test_left_out_topics_are_logged_not_warned_without_a_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every BEIR split leaves queries out: a library call without on_notice is not warned."""
    with caplog.at_level(logging.INFO, logger="evalkit.goldset"):
        load_trec_goldset(QRELS, FIXTURE / "topics.tsv", name="robust")

    assert [(r.levelno, r.getMessage().split(": ", 1)[1][:27]) for r in caplog.records] == [
        (logging.INFO, "1 of its 3 queries have no "),
        (logging.WARNING, "2 judgment(s) graded below "),
    ]


def test_utf16_topics_are_one_problem_saying_to_save_as_utf8(tmp_path: Path) -> None:
    """As PowerShell 5's `>` writes them: each line was "not valid UTF-8" before."""
    topics = tmp_path / "topics.tsv"
    topics.write_text((FIXTURE / "topics.tsv").read_text(encoding="utf-8"), encoding="utf-16")

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(QRELS, topics)

    assert locations(caught.value) == [("topics.tsv", None, None)]
    assert caught.value.problems[0].detail.startswith("is UTF-16 text")


def test_topics_from_a_pipe_as_process_substitution_gives_them(tmp_path: Path) -> None:
    """`--topics <(zcat topics.gz)` was "does not exist; check the path"."""
    fifo = tmp_path / "topics.fifo"
    os.mkfifo(fifo)
    data = (FIXTURE / "topics.sgml").read_bytes()
    writer = threading.Thread(target=fifo.write_bytes, args=(data,), daemon=True)
    writer.start()
    try:
        goldset = load_trec_goldset(QRELS, fifo, on_notice=lambda _: None)
    finally:
        # The writer may still be closing its end under load: opening the FIFO to read then
        # would wait for a writer that never comes. Only one the loader never opened is left.
        writer.join(timeout=10)
        if writer.is_alive():  # the FIFO was never opened: let the writer's open return
            with fifo.open("rb") as reader:
                reader.read()
        writer.join(timeout=10)

    assert goldset.queries == EXPECTED_QUERIES


def test_a_zero_padded_topic_number_is_named_when_the_qrels_write_it_unpadded(
    tmp_path: Path,
) -> None:
    """Topics that say "Number: 051" where their qrels say "51": the problem said only to
    pass the topics file that belongs to these qrels, which it was."""
    (tmp_path / "topics").write_text(
        "<top>\n<num> Number: 051\n<title> a\n</top>\n", encoding="utf-8"
    )
    (tmp_path / "qrels").write_text("51 0 d1 1\n51 0 d2 0\n", encoding="utf-8")

    with pytest.raises(GoldsetError) as caught:
        load_trec_goldset(tmp_path / "qrels", tmp_path / "topics")

    assert caught.value.problems[0].detail == (
        "judgment for query '51' (and 1 more lines for it), which is not in topics; it has "
        "'051': ids are compared as written, so write them alike in both files"
    )
