"""Users' data on the dashboard is text: Markdown, Streamlit directives, HTML for Plotly and
bidirectional overrides in ids and query texts are shown as they are, never acted on."""

from __future__ import annotations

import ast
import html
import tomllib
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

import evalkit.dashboard
from evalkit.dashboard.charts import escaped, plot_text
from evalkit.dashboard.ui import md


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("**bold**", r"\*\*bold\*\*"),
        ("[click](https://e.example)", r"\[click\](https\://e.example)"),
        (":red[x] $$a$$", r"\:red\[x\] \$\$a\$\$"),
        ("| a | b |", r"\| a \| b \|"),
        ("<b>x</b> &amp;", r"\<b\>x\</b\> \&amp;"),
        ("line\n# heading\n---", r"line \# heading ---"),
        ("rtl\u202eexe.txt", r"rtl\\u202eexe.txt"),
        ("q01-b 1. plain (text)", "q01-b 1. plain (text)"),
    ],
)
def test_md_makes_users_text_plain_markdown(value: str, shown: str) -> None:
    assert md(value) == shown


def test_plot_text_escapes_html_but_keeps_line_breaks() -> None:
    link = '<a href="https://evil.example">x</a>'
    assert plot_text(link) == '&lt;a href="https://evil.example"&gt;x&lt;/a&gt;'
    assert plot_text("a<br>b & c") == "a<br>b &amp; c"
    assert plot_text("d\u202e3") == "d\\u202e3"


def test_escaped_reaches_names_categories_hover_data_and_category_orders() -> None:
    link = '<a href="https://evil.example">x</a>'
    figure = go.Figure(
        go.Bar(
            x=[link, "plain"],
            y=[1, 2],
            name=link,
            text=[link, None],
            customdata=np.array([["run-1", link], ["run-2", "r"]], dtype=object),
        )
    )
    figure.update_xaxes(categoryorder="array", categoryarray=[link, "plain"])
    figure.add_annotation(text=link, x=0, y=0)
    escaped(figure)
    trace = figure.data[0]
    safe = html.escape(link, quote=False)
    assert trace.name == safe
    assert list(trace.x) == [safe, "plain"]
    assert list(trace.y) == [1, 2]
    assert list(trace.text) == [safe, None]
    assert trace.customdata[0][1] == safe
    assert trace.customdata[0][0] == "run-1"
    assert list(figure.layout.xaxis.categoryarray) == [safe, "plain"]
    assert figure.layout.annotations[0].text == safe
    assert "<a" not in figure.to_json()


DASHBOARD = Path(evalkit.dashboard.__file__).parent


def _drawn_by_magic(tree: ast.AST) -> list[int]:
    """Lines of the statements Streamlit's magic would draw on the page: an expression that
    is no call, no yield or await and no docstring (of the module, a class or a function)."""
    lines = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for index, statement in enumerate(body):
            if not isinstance(statement, ast.Expr) or isinstance(
                statement.value, (ast.Call, ast.Yield, ast.YieldFrom, ast.Await)
            ):
                continue
            docstring = (
                index == 0
                and isinstance(
                    node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                )
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            )
            if not docstring:
                lines.append(statement.lineno)
    return lines


def test_no_page_script_holds_a_statement_streamlit_would_draw() -> None:
    """A variable's docstring in the Leaderboard's script read "Session-state key: the
    goldset and tag the Runs picker was last drawn for." above the page's title."""
    scripts = [DASHBOARD / "app.py", *sorted((DASHBOARD / "views").glob("*.py"))]
    drawn = {
        script.name: lines
        for script in scripts
        if (lines := _drawn_by_magic(ast.parse(script.read_text(encoding="utf-8"))))
    }
    assert drawn == {}
    # And magic is off, for what a later page script might hold.
    config = tomllib.loads((DASHBOARD / ".streamlit" / "config.toml").read_text("utf-8"))
    assert config["runner"]["magicEnabled"] is False
