"""Option groups: each group's options are declared once and parsed once into its record,
and every command lists the options it always did."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from evalkit.cli import load_commands
from evalkit.cli._goldset import GOLDSET
from evalkit.cli._groups import grouped
from evalkit.cli._options import PAIRED_TEST
from evalkit.cli._retriever import RETRIEVER
from evalkit.records.requests import GoldsetSelection, PairedTestSettings
from evalkit.retrievers.factory import RetrieverOptions

OPTION_NAMES = Path(__file__).parent / "data" / "cli_option_names.json"


def _commands(command: Any, path: tuple[str, ...], context: Any) -> dict[str, Any]:
    if not hasattr(command, "list_commands"):
        return {" ".join(path): command}
    inner = type(context)(command, parent=context, info_name=path[-1] if path else "evalkit")
    found: dict[str, Any] = {}
    for name in command.list_commands(inner):
        found.update(_commands(command.get_command(inner, name), (*path, name), inner))
    return found


def _every_command() -> dict[str, Any]:
    root = typer.main.get_command(load_commands(["--help"]))
    return _commands(root, (), root.make_context("evalkit", [], resilient_parsing=True))


def test_every_command_offers_the_options_it_always_did() -> None:
    expected = json.loads(OPTION_NAMES.read_text(encoding="utf-8"))
    offered = {
        name: sorted(flag for param in command.params for flag in param.opts + param.secondary_opts)
        for name, command in _every_command().items()
    }
    assert offered == expected


def test_gate_and_compare_take_the_paired_test_with_their_own_defaults() -> None:
    commands = _every_command()

    def default(command: str, name: str) -> Any:
        return next(p.default for p in commands[command].params if p.name == name)

    assert default("gate", "min_effect") == 0.01
    assert default("compare", "min_effect") == 0.0
    assert default("gate", "resamples") == default("compare", "resamples") == 10_000


def _app_with(**groups: Any) -> tuple[typer.Typer, dict[str, Any]]:
    received: dict[str, Any] = {}
    app = typer.Typer()

    @app.command()
    @grouped
    def probe(
        label: str = "x",
        retriever: RetrieverOptions = groups["retriever"],
        goldset: GoldsetSelection = groups["goldset"],
        paired: PairedTestSettings = groups["paired"],
    ) -> None:
        received.update(label=label, retriever=retriever, goldset=goldset, paired=paired)

    return app, received


def test_a_command_gets_each_group_as_its_record() -> None:
    app, received = _app_with(
        retriever=RETRIEVER.use(), goldset=GOLDSET.use(), paired=PAIRED_TEST.use(seed=7)
    )
    args = ["--goldset", "demo", "--goldset-format", "beir", "--collection", "docs"]
    args += ["--where-key", "tenant", "--option", "index=x", "--option", "n=3", "--alpha", "0.1"]
    done = CliRunner().invoke(app, [*args, "--label", "y"])
    assert done.exit_code == 0, done.output
    assert received["label"] == "y"
    assert received["retriever"] == RetrieverOptions(
        collection="docs", where_key="tenant", factory_options={"index": "x", "n": 3}
    )
    assert received["goldset"] == GoldsetSelection(name="demo", format="beir")
    assert received["paired"] == PairedTestSettings(alpha=0.1, seed=7)


def test_a_command_offering_part_of_a_group_gets_the_rest_as_the_group_fixes_it() -> None:
    app, received = _app_with(
        retriever=RETRIEVER.use(omit=("option",), fixed={"defer_model_check": True}),
        goldset=GOLDSET.use(omit=("goldset_version",), goldset="stored"),
        paired=PAIRED_TEST.use(**dataclasses.asdict(PairedTestSettings(min_effect=0.02))),
    )
    runner = CliRunner()
    refused = runner.invoke(app, ["--option", "index=x"])
    assert refused.exit_code == 2
    assert "--option" in refused.output
    done = runner.invoke(app, ["--http-retriever", "http://127.0.0.1:9/search"])
    assert done.exit_code == 0, done.output
    assert received["retriever"] == RetrieverOptions(
        http_url="http://127.0.0.1:9/search", defer_model_check=True
    )
    assert received["goldset"] == GoldsetSelection(name="stored")
    assert received["paired"] == PairedTestSettings(min_effect=0.02)


def test_a_retriever_error_names_the_setting_and_the_cli_names_the_flag() -> None:
    from evalkit.cli._output import with_flags
    from evalkit.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        RetrieverOptions(where_key=" ")
    assert str(raised.value).startswith("`where_key` is empty")
    assert with_flags(str(raised.value)).startswith("--where-key is empty")
    with pytest.raises(ConfigError) as raised:
        RetrieverOptions(http_url="http://127.0.0.1:9", collection="docs").resolved_kind(
            None  # type: ignore[arg-type]
        )
    assert with_flags(str(raised.value)) == (
        "give one of --http-retriever, --retriever or --collection/--chroma-url"
    )


def test_the_goldset_run_names_goldset_version_and_the_cli_says_the_flag(tmp_path: Path) -> None:
    from evalkit_in_process import invoke_evalkit

    goldset = Path(__file__).parent / "data" / "goldset" / "jsonl_small"
    args = ["--home", str(tmp_path), "run", "--goldset", str(goldset), "--goldset-version", "v1"]
    done = invoke_evalkit(
        *args, "--http-retriever", "http://127.0.0.1:9/search", env=dict(os.environ)
    )
    assert done.returncode == 2
    assert "error: --goldset-version picks a stored goldset's version" in done.stderr
