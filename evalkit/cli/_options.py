"""What the command modules share: the output format options, the options of a command
that reads documents' texts or judges its results as a further step, and the command
groups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._app import command_group
from evalkit.cli._groups import OptionGroup
from evalkit.cli._output import OutputFormat
from evalkit.records.requests import MAX_SEED, PAIRED_TEST_DEFAULTS, PairedTestSettings

if TYPE_CHECKING:
    from evalkit.pipeline import DocumentTexts

__all__ = [
    "PAIRED_TEST",
    "Format",
    "Output",
    "OutputOnly",
    "TextsChromaUrl",
    "TextsCollection",
    "TextsCorpus",
    "command_group",
    "corpus_for",
    "document_texts",
    "max_judgments_with",
    "optional_document_texts",
    "seed_option",
]


def seed_option(help: str, *names: str) -> Any:
    """A ``--seed`` option: an integer from 0 (numpy refuses less) to ``MAX_SEED`` (the store
    keeps seeds as 64-bit integers), refused as misuse before any work."""
    return typer.Option(*names, min=0, max=MAX_SEED, help=help)


def _paired_test(
    *,
    alpha: Annotated[
        float, typer.Option(help="Family-wise error rate across the measures.")
    ] = PAIRED_TEST_DEFAULTS.alpha,
    min_effect: Annotated[
        float,
        typer.Option(help="Smallest drop that matters (in the measure's units, e.g. 0.01)."),
    ] = PAIRED_TEST_DEFAULTS.min_effect,
    resamples: Annotated[
        int, typer.Option(help="Bootstrap resamples and sign-flip permutations.")
    ] = PAIRED_TEST_DEFAULTS.resamples,
    seed: Annotated[
        int, seed_option("Seed of the resampling (recorded in the output).")
    ] = PAIRED_TEST_DEFAULTS.seed,
) -> PairedTestSettings:
    return PairedTestSettings(alpha=alpha, min_effect=min_effect, resamples=resamples, seed=seed)


PAIRED_TEST = OptionGroup(_paired_test)
"""The paired test's options of ``gate`` and ``compare``, parsed into a
``PairedTestSettings``; each command gives its own defaults
(``PAIRED_TEST.use(**asdict(GATE_DEFAULTS.paired_test))``)."""

Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]
"""The ``--format table|json`` option of a command that prints a result."""

Output = Annotated[
    OutputFormat, typer.Option("--output", "-o", "--format", help="Output: table or json.")
]
"""The output format of the review commands and of the goldset commands that read no source
format (``goldset generate``, ``remap``, ``publish``): ``-o/--output``, as ``goldset import``
has it, or ``--format`` as elsewhere."""

OutputOnly = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output: table or json.")]
"""The ``-o/--output`` format of a command without ``--format`` for it: the review exchange
commands, whose ``--format`` names the annotation tool."""

TextsChromaUrl = Annotated[
    str | None, typer.Option("--chroma-url", help="With --collection: a Chroma server's URL.")
]
"""The ``--chroma-url`` of a command that reads documents' texts from a ``--collection``."""


TextsCorpus = Annotated[
    Path | None,
    typer.Option(
        "--corpus",
        help="The corpus the documents were indexed from (JSONL, BEIR or TREC), for their "
        "texts; or give --collection.",
        exists=True,
    ),
]
"""The ``--corpus`` of a command that reads documents' texts (judging, review)."""

TextsCollection = Annotated[
    str | None,
    typer.Option(
        "--collection",
        help="The Chroma collection that holds the documents' texts (embedded under the "
        "home, or at --chroma-url); instead of --corpus.",
    ),
]
"""The ``--collection`` of a command that reads documents' texts (judging, review)."""


def optional_document_texts(
    corpus: Path | None, collection: str | None, chroma_url: str | None = None
) -> DocumentTexts | None:
    """Where a command reads documents' texts: the corpus file or the collection (not both:
    a ConfigError), or None when neither is given."""
    from evalkit.cli._output import settings
    from evalkit.errors import ConfigError
    from evalkit.pipeline import CollectionTexts, CorpusTexts

    if corpus is not None and collection is not None:
        raise ConfigError("give the documents' texts by --corpus or by --collection, not both")
    if corpus is not None:
        return CorpusTexts(corpus)
    if collection is not None:
        return CollectionTexts(settings(), collection, chroma_url)
    return None


def document_texts(
    corpus: Path | None, collection: str | None, chroma_url: str | None = None
) -> DocumentTexts:
    """``optional_document_texts`` for a command that needs the texts: one of the two."""
    from evalkit.errors import ConfigError

    texts = optional_document_texts(corpus, collection, chroma_url)
    if texts is None:
        raise ConfigError(
            "name where the documents' texts are: --corpus FILE (the corpus the index was "
            "built from) or --collection NAME (the Chroma collection holding them), one of two"
        )
    return texts


def corpus_for(texts: str) -> Any:
    """The ``--corpus`` option of a command whose judging flag reads documents' ``texts``
    (e.g. "--judge's document texts") from the corpus rather than the collection."""
    return typer.Option(
        help=f"The corpus the index was built from, for {texts} (default: the --collection's "
        "stored documents)."
    )


def max_judgments_with(flag: str) -> Any:
    """The ``--max-judgments`` option of a command that judges when given ``flag``."""
    return typer.Option(min=0, help=f"With {flag}: send at most this many new pairs.")
