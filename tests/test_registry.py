"""Named kinds register once: a second kind under a taken name is refused; an unknown name
is looked up with the choices in the error."""

from __future__ import annotations

import pytest

from evalkit.alerts.rules import RULE_KINDS, register_rule_kind
from evalkit.alerts.sinks import SINK_KINDS, register_sink_kind
from evalkit.errors import ConfigError
from evalkit.registry import lookup_named
from evalkit.scheduler.jobs import JOB_KINDS, register_job_kind


@pytest.mark.parametrize(
    ("registry", "register", "what"),
    [
        (JOB_KINDS, register_job_kind, "job kind"),
        (RULE_KINDS, register_rule_kind, "rule kind"),
        (SINK_KINDS, register_sink_kind, "sink kind"),
    ],
)
def test_a_taken_name_is_refused_and_the_first_kind_stays(
    registry: dict[str, object], register: object, what: str
) -> None:
    name, kind = next(iter(registry.items()))
    before = dict(registry)
    with pytest.raises(ConfigError, match=rf"a {what} named '{name}' is registered already"):
        register(kind)  # type: ignore[operator]
    assert registry == before
    assert registry[name] is kind


def test_an_unknown_name_is_refused_with_the_choices() -> None:
    formats = {"jsonl": 1, "beir": 2}
    assert lookup_named(formats, "beir", what="goldset format") == 2
    with pytest.raises(
        ConfigError, match=r"^unknown goldset format 'csv'; use one of: jsonl, beir$"
    ):
        lookup_named(formats, "csv", what="goldset format")
