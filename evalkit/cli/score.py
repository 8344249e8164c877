"""``evalkit score``: trec_eval-compatible scoring of TREC run files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._options import Format
from evalkit.cli._output import OutputFormat, console, emit_json, table
from evalkit.cli.runs import SortOption, sort_per_query


@app.command("score")
def score(
    qrels: Annotated[Path, typer.Option(help="TREC qrels file: `qid 0 docid rel` per line.")],
    run: Annotated[Path, typer.Option(help="TREC run file: `qid Q0 docid rank score tag`.")],
    measure: Annotated[
        list[str],
        typer.Option("-m", "--measure", help="Measure, repeatable: ndcg@10, recall@100, map..."),
    ],
    per_query: Annotated[bool, typer.Option(help="Also report every query's values.")] = False,
    sort: SortOption = "id",
    complete: Annotated[
        bool,
        typer.Option(
            help="Score judged queries missing from the run as 0 (trec_eval -c); by default "
            "they are skipped, as trec_eval does."
        ),
    ] = False,
    relevance_threshold: Annotated[
        int, typer.Option(help="Grade at which a document counts as relevant (trec_eval -l).")
    ] = 1,
    output: Format = OutputFormat.table,
) -> None:
    """Score a TREC run file against TREC qrels, exactly as trec_eval does.

    Example: evalkit score --qrels qrels.txt --run run.txt -m ndcg@10 -m recall@100
    --per-query --format json
    """
    from evalkit.errors import InputError
    from evalkit.metrics import Evaluator, parse_measures, read_qrels, read_run

    measures = parse_measures(measure)
    judgments = read_qrels(qrels)
    if judgments.empty:
        raise InputError("holds no judgments; there is nothing to score against", path=str(qrels))
    ranking = read_run(run)
    with _blamed_on(qrels):
        evaluator = Evaluator(judgments, measures, relevance_threshold=relevance_threshold)
    with _blamed_on(run):
        result = evaluator.evaluate(ranking, complete=complete)
    if result.n_queries == 0:
        raise InputError(
            f"no query of the run is judged in {qrels} (the run has "
            f"{ranking['query_id'].nunique()} queries, the qrels {judgments['query_id'].nunique()}"
            "); check that both files number queries alike, or pass --complete to score every "
            "judged query",
            path=str(run),
        )
    data = result.to_dict()
    ordered = sort_per_query(result.per_query, sort)
    if per_query:
        data["per_query"] = {str(qid): data["per_query"][str(qid)] for qid in ordered.index}
    else:
        data.pop("per_query", None)
    if output is OutputFormat.json:
        emit_json(data)
        return
    if per_query:
        rows = [[str(qid), *row.tolist()] for qid, row in ordered.iterrows()]
        console.print(table("per query", ["query", *ordered.columns], rows))
    rows = [[name, value] for name, value in result.aggregate.items()]
    console.print(table(f"all ({result.n_queries} queries)", ["measure", "value"], rows))


@contextmanager
def _blamed_on(path: Path) -> Iterator[None]:
    """Name ``path`` in an input error raised without a file (a document listed twice for a
    query is found once the file's rows are indexed, not while they are read), and the lines
    of a pair given twice."""
    from evalkit.errors import InputError
    from evalkit.metrics import RepeatedPairError, repeat_in_file

    try:
        yield
    except RepeatedPairError as error:
        if error.path is not None:
            raise
        raise repeat_in_file(error, path) from error
    except InputError as error:
        if error.path is not None:
            raise
        raise InputError(error.detail, path=str(path), field=error.field) from error
