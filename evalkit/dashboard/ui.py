"""What every page shares: opening the store, the first-run page, explaining missing data,
pickers that follow the URL's query parameters, and number formatting."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evalkit.dashboard import access, charts, formats
from evalkit.dashboard.loaders.shared import AREA_HINTS, StoreFacts
from evalkit.errors import EvalkitError, NotFoundError
from evalkit.redaction import visible

__all__ = [
    "CHARTS",
    "LINKS_KEY",
    "PAGE_ROWS",
    "SELECTIONS_KEY",
    "MissingLinkTargetError",
    "PageContext",
    "check_link",
    "choose",
    "clicked_run",
    "column_settings",
    "compare_clicked_run",
    "figure",
    "first_run",
    "fmt",
    "has_rows",
    "link_column",
    "link_value",
    "md",
    "missing_area",
    "no_finished_run",
    "page_start",
    "page_url",
    "paged",
    "plot",
    "remember_selections",
    "restore_selections",
    "run_labels",
    "run_page",
    "table",
]

# The characters Markdown, Streamlit's directives (`:red[...]`, `:icon:`) or its math
# (`$...$`) read as syntax anywhere in a line; a backslash makes each one plain text. Those
# that are syntax only at the start of a line (`-`, `1.`) are left alone: the value is put on
# one line, after other text.
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]#+!|<>$~:=^&])")


def md(value: object) -> str:
    """``value`` (an id, a query text: users' data) as plain text inside one line of
    Streamlit Markdown: line breaks become spaces, Markdown syntax is escaped, control and
    bidirectional characters are written as escapes, so a logged query cannot add links,
    tables, headings or formatting, or reorder the text around it."""
    flat = " ".join(str(value).splitlines())
    return _MARKDOWN_SYNTAX.sub(r"\\\1", visible(flat))


T = TypeVar("T")

DEMO_COMMANDS = """\
make demo
# or, step by step:
evalkit goldset import --format jsonl goldsets/demo --name demo
evalkit index --corpus goldsets/demo/corpus.jsonl --collection demo
evalkit run --goldset demo --collection demo --k 100
"""


@dataclass(frozen=True, slots=True)
class PageContext:
    """The store a page reads and what it holds; ``load`` runs a cached loader on it."""

    path: Path
    facts: StoreFacts

    def load(self, loader: str, **parameters: Any) -> Any:
        """Run a loader of ``evalkit.dashboard.loaders.LOADERS`` through the cache."""
        return access.load(self.path, loader, **parameters)


def first_run(path: Path) -> None:
    """The page shown while the store holds no goldset and no run."""
    st.info(f"No evaluation is stored in `{path}` yet.", icon=":material/rocket_launch:")
    st.markdown(
        "Run the demo from a source checkout: it imports the demo goldset, indexes its "
        "corpus into an embedded Chroma collection and stores a first evaluation run. "
        "Then reload this page."
    )
    st.code(DEMO_COMMANDS, language="bash")
    st.markdown(
        "The dashboard reads the store named by `EVALKIT_STORE_PATH`, else "
        "`$EVALKIT_HOME/evalkit.duckdb` (default: the nearest `.evalkit/` in the working "
        "directory or its parents, else `./.evalkit`); start it with "
        "`evalkit --home DIR dashboard` to read another one."
    )


def missing_area(*areas: str) -> None:
    """Explain that this page's data does not exist yet, and what produces it."""
    for area in areas:
        st.info(f"Nothing stored here yet. {AREA_HINTS[area]}", icon=":material/info:")


def no_finished_run(page: PageContext, goldset: str) -> None:
    """Say that ``goldset`` has no finished run yet, and when its runs failed, which ones
    and why (a failing job is never shown as one that has not run)."""
    failed: pd.DataFrame = page.load("failed_runs", goldset=goldset)
    if failed.empty:
        st.info(f"No finished run of goldset {md(goldset)} yet: run `evalkit run --goldset NAME`")
        return
    newest = failed.iloc[0]
    st.warning(
        f"No run of goldset {md(goldset)} has finished: "
        f"{formats.plural(len(failed), 'run')} failed. The newest, {md(newest['run_id'])} "
        f"({md(newest['retriever'])}): {md(newest['error'] or 'no error stored')}. "
        "`evalkit runs show RUN` prints a run's error in full.",
        icon=":material/error:",
    )
    table(failed[["run_id", "retriever", "started_at", "status", "error"]])


def has_rows(frame: pd.DataFrame | None, *, area: str, empty: str) -> TypeGuard[pd.DataFrame]:
    """Whether ``frame`` has rows to show; if not, say why in a caption: what produces
    ``area``'s tables where the store has none (``frame`` is None), else ``empty``."""
    if frame is None:
        st.caption(AREA_HINTS[area])
        return False
    if frame.empty:
        st.caption(empty)
        return False
    return True


def run_page(
    title: str,
    render: Callable[[PageContext], None],
    *,
    areas: Sequence[str] = ("core",),
    needs_evaluation: bool = True,
) -> None:
    """Draw a page: title, store checks, then ``render``; errors become messages.

    An absent store, or one with no goldset and no run when ``needs_evaluation``, shows the
    first-run page; a missing area (its tables not in the store) says what produces it; a
    store held by a writer is retried and explained.
    """
    st.title(title)
    notices = st.container()
    st.session_state[access.NOTICES_KEY] = []
    st.session_state[access.BUSY_KEY] = False
    try:
        path = access.configured_store_path()
    except EvalkitError as error:
        st.error(f"The configuration cannot be read: {error}")
        return
    try:
        if access.store_version(path) is None:
            first_run(path)
            return
        facts: StoreFacts = access.load(path, "facts")
        if facts.empty and needs_evaluation:
            first_run(path)
            return
        missing = [area for area in areas if not facts.has(area)]
        if missing:
            missing_area(*missing)
            return
        render(PageContext(path, facts))
    except access.StoreBusyError as busy:
        st.warning(str(busy), icon=":material/lock_clock:")
        st.button("Retry now", key="retry-busy")
    except EvalkitError as error:
        st.error(str(error))
    finally:
        for notice in st.session_state.get(access.NOTICES_KEY, []):
            notices.warning(notice, icon=":material/lock_clock:")


class MissingLinkTargetError(NotFoundError):
    """A link's query parameter names a goldset, run, query ... that the store does not hold."""


LINKS_KEY = "_evalkit_links_checked"
"""Session-state key: the URL parameters already checked as this session's link."""


def link_value(param: str) -> str | None:
    """The URL parameter ``param`` while it is still the link the page was opened with
    (before ``check_link`` checked it in this session), else None."""
    if param in st.session_state.get(LINKS_KEY, set()):
        return None
    return st.query_params.get(param)


SELECTIONS_KEY = "_evalkit_selections"
"""Session-state key: each page's URL parameters (its pickers' choices) when last drawn."""


def restore_selections(page: str) -> None:
    """Reopen ``page`` (its URL path) on the choices it had when last drawn in this session,
    when it is opened without any URL parameter: the sidebar's links drop them, and every
    picker follows them (``choose``), so a page left and reopened kept none of its choices."""
    remembered: dict[str, dict[str, list[str]]] = st.session_state.get(SELECTIONS_KEY, {})
    if not st.query_params and remembered.get(page):
        st.query_params.from_dict(remembered[page])


def remember_selections(page: str) -> None:
    """Remember ``page``'s URL parameters as drawn, for ``restore_selections``: every value
    of a repeated parameter (a filter's picks), which ``to_dict`` would cut to the last."""
    st.session_state.setdefault(SELECTIONS_KEY, {})[page] = {
        name: st.query_params.get_all(name) for name in st.query_params
    }


def check_link(label: str, param: str, exists: Callable[[str], bool], *, where: str = "") -> None:
    """Refuse a link whose parameter ``param`` names what does not exist.

    Checked once per session, when the page is opened from its URL: a stale alert link
    must not open another run or query under the old address. Once the user works the
    pickers, a parameter left over from an earlier choice gives way to them.
    """
    wanted = link_value(param)
    checked: set[str] = st.session_state.setdefault(LINKS_KEY, set())
    if wanted is None or exists(wanted):
        checked.add(param)
        return
    raise MissingLinkTargetError(
        f"{label} {wanted!r} named by this link (?{param}={wanted}) does not exist{where}. "
        "It may have been deleted, or the link was mistyped; nothing else is shown in its "
        f"place. Open the page without ?{param}= to pick another."
    )


def choose(
    label: str,
    options: Sequence[T],
    *,
    param: str,
    default: T | None = None,
    format_func: Callable[[T], str] = str,
    container: Any = None,
    help: str | None = None,
    where: str = "",
) -> T:
    """A select box whose choice follows the URL query parameter ``param`` (so a link, for
    example from an alert, opens the page on it) and is written back to it.

    A link naming a value not among ``options`` is refused (``check_link``; ``where`` says
    among what, e.g. " among the finished runs of goldset demo"), never replaced by another.
    """
    target = container if container is not None else st
    values = list(options)
    wanted = st.query_params.get(param)
    by_text = {str(value): index for index, value in enumerate(values)}
    check_link(label, param, by_text.__contains__, where=where)
    if wanted is not None and wanted in by_text:
        index = by_text[wanted]
    elif default is not None and default in values:
        index = values.index(default)
    else:
        index = 0
    chosen: T = target.selectbox(
        label,
        values,
        index=index,
        # Options are users' ids and texts: a bidirectional override would reverse them.
        format_func=lambda value: visible(format_func(value)),
        key=f"choose-{param}",
        help=help,
    )
    if st.query_params.get(param) != str(chosen):
        st.query_params[param] = str(chosen)
    return chosen


def run_labels(runs: pd.DataFrame, *, status: bool) -> dict[str, str]:
    """What a run picker shows for each run of ``runs``, by run id: ``run_id  retriever``,
    then the run's status when ``status``, then its ``[label]`` when it has one."""
    return {
        str(row.run_id): f"{row.run_id}  {row.retriever}"
        + (f"  {row.status}" if status else "")
        + (f"  [{row.label}]" if isinstance(row.label, str) and row.label else "")
        for row in runs.itertuples()
    }


fmt = formats.fmt
"""A figure for people (``evalkit.dashboard.formats.fmt``)."""


def table(
    frame: pd.DataFrame,
    *,
    digits: int | None = 4,
    columns: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    key: str | None = None,
    height: int | None = None,
) -> None:
    """Show ``frame`` without its index, every column under a human header with its format
    (``evalkit.dashboard.formats``: grades and counts as integers, p-values scientific,
    scores at ``digits`` decimals, ``None``: as they come), wide enough not to be cut,
    missing values as a dash; ``labels`` replace headers (``ci_low``: "95% CI low
    (bootstrap)"); ``columns`` settings (links, charts; ``None`` hides a column) replace
    those of their columns."""
    config = {**column_settings(frame, digits=digits, labels=labels), **(columns or {})}
    st.dataframe(
        frame,
        hide_index=True,
        column_config=config or None,
        key=key,
        height=height if height is not None else "auto",
        placeholder=formats.DASH,
    )


def column_settings(
    frame: pd.DataFrame, *, digits: int | None = 4, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``st.dataframe`` settings of every column of ``frame``: header (``labels`` first),
    format and width."""
    settings = {}
    for name in frame.columns:
        form = formats.column_format(str(name), frame[name])
        if labels and str(name) in labels:
            form = formats.ColumnFormat(labels[str(name)], form.kind)
        settings[str(name)] = _column(form, frame[name], digits)
    return settings


def _column(form: formats.ColumnFormat, values: pd.Series, digits: int | None) -> Any:
    if form.kind == "time" or pd.api.types.is_datetime64_any_dtype(values):
        return st.column_config.DatetimeColumn(
            form.label, format="YYYY-MM-DD HH:mm:ss", width=max(170, len(form.label) * 8 + 32)
        )
    if pd.api.types.is_bool_dtype(values):
        return st.column_config.CheckboxColumn(form.label)
    if pd.api.types.is_numeric_dtype(values) and form.kind != "text":
        number = formats.KIND_FORMATS.get(form.kind)
        if form.kind in ("score", "other"):
            number = f"%.{digits}f" if digits is not None else None
            if not pd.api.types.is_float_dtype(values):
                number = "%d"
        return st.column_config.NumberColumn(
            form.label, format=number, width=max(90, len(form.label) * 8 + 32)
        )
    shown = [str(value) for value in values.dropna().head(200)]
    return st.column_config.TextColumn(
        form.label, width=min(formats.text_width(shown, form.label), 520)
    )


PAGE_ROWS = 50
"""Rows per page of a long table."""

CHARTS: Mapping[str, Callable[..., go.Figure]] = {
    "quality": charts.quality_chart,
    "drift": charts.drift_chart,
    "projection": charts.projection_chart,
    "dimensions": charts.dimensions_chart,
    "lines": charts.lines_chart,
    "judged": charts.judged_chart,
    "measurements": charts.measurements_chart,
    "query_history": charts.query_history_chart,
    "relevant_ranks": charts.relevant_ranks_chart,
    "answers": charts.answers_chart,
}
"""Figure builders by name, for ``figure``'s cache key."""


@st.cache_resource(ttl=access.CACHE_SECONDS, max_entries=256, show_spinner=False)
def _cached_figure(
    builder: str, arguments: tuple[Any, ...], options: tuple[tuple[str, Any], ...]
) -> go.Figure:
    return charts.escaped(CHARTS[builder](*arguments, **dict(options)))


def figure(builder: str, *arguments: Any, **options: Any) -> go.Figure:
    """The figure ``CHARTS[builder](*arguments, **options)``, built once per distinct input.

    Kept per process (the inputs are hashed, the figure is not copied): a warm view of a
    page builds no figure. Callers must not change the figure they get.
    """
    frozen = tuple(sorted((name, _hashable(value)) for name, value in options.items()))
    return _cached_figure(builder, tuple(_hashable(value) for value in arguments), frozen)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def plot(chart: go.Figure, *, key: str | None = None, container: Any = None) -> Any:
    """Draw ``chart``; with ``key``, a click on a point reruns the page with the selection
    (read it with ``clicked_run``)."""
    target = container if container is not None else st
    if key is None:
        return target.plotly_chart(chart)
    return target.plotly_chart(chart, key=key, on_select="rerun", selection_mode="points")


def clicked_run(event: Any) -> tuple[str, str] | None:
    """(run_id, retriever) of the run point clicked in a ``plot(..., key=...)`` chart."""
    try:
        points = event.selection.points
    except AttributeError:
        return None
    for point in points or ():
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(data, Sequence) and len(data) >= 2 and isinstance(data[0], str):
            # The figure's text was escaped for Plotly (charts.escaped): read it back.
            return html.unescape(str(data[0])), html.unescape(str(data[1]))
    return None


def compare_clicked_run(
    event: Any, *, goldset: str, baselines: Mapping[str, str], **parameters: str
) -> None:
    """Open Compare runs on the run point clicked in a chart (``clicked_run``), against its
    series' baseline in ``baselines`` (by retriever), with any other URL ``parameters``
    (such as the measure); a click on the baseline itself says so instead."""
    clicked = clicked_run(event)
    if clicked is None:
        return
    run_id, retriever = clicked
    baseline = baselines.get(retriever, run_id)
    if baseline == run_id:
        st.info(f"Run {md(run_id)} is its series' baseline: click a later run to compare it.")
        return
    st.switch_page(
        "views/compare.py",
        query_params={"goldset": goldset, **parameters, "baseline": baseline, "candidate": run_id},
    )


def page_url(page: str, **parameters: object) -> str:
    """A relative link to ``page`` (its URL path, '' for Overview) with query parameters;
    relative, so that it works under any base path the server is mounted on."""
    query = urlencode({name: str(value) for name, value in parameters.items() if value is not None})
    return f"./{page}?{query}" if query else f"./{page}"


def link_column(label: str, *, shows: str | None = None, help: str | None = None) -> Any:
    """A ``st.dataframe`` column of ``page_url`` links, displaying the value of the URL
    parameter ``shows`` (its last parameter), else an arrow."""
    return st.column_config.LinkColumn(
        label,
        display_text=rf"{shows}=([^&]*)$" if shows else ":material/open_in_new:",
        help=help,
    )


def page_start(total: int, *, key: str, noun: str, one: str) -> int:
    """A page picker over ``total`` rows (``PAGE_ROWS`` a page) with a caption giving the
    true total (``one`` row, ``noun`` for any other count); returns the first row of the
    chosen page."""
    pages = max(1, -(-total // PAGE_ROWS))
    if pages == 1:
        st.caption(formats.plural(total, one, noun))
        return 0
    left, right = st.columns([1, 4], vertical_alignment="bottom")
    page = int(
        left.number_input(
            f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1, key=key
        )
    )
    start = (page - 1) * PAGE_ROWS
    right.caption(f"{noun} {start + 1:,}-{min(start + PAGE_ROWS, total):,} of {total:,}")
    return start


def paged(frame: pd.DataFrame, *, key: str, noun: str, one: str) -> pd.DataFrame:
    """The rows of ``frame`` on the page the user picked, under a caption with the total
    (``one`` row, ``noun`` for any other count)."""
    start = page_start(len(frame), key=key, noun=noun, one=one)
    return frame.iloc[start : start + PAGE_ROWS]
