"""``evalkit alerts list|show|evaluate|deliver|test``: stored alerts, rule evaluation and
delivery, and sink checks."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from evalkit.cli._options import Format, command_group
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    print_listing,
    say,
    settings,
    table,
)
from evalkit.cli._service import (
    DELIVERY_FAILED,
    deliver_outbox,
    service_store,
    store_access,
)
from evalkit.errors import ConfigError

__all__ = ["alerts_app"]

alerts_app = command_group(
    "alerts",
    "Stored alerts, rule evaluation and delivery, and sink checks.",
)


@alerts_app.command("list")
def list_alerts(
    rule: Annotated[str | None, typer.Option(help="Only alerts of this rule.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="firing (the notifications of conditions not resolved since) or resolved."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many alerts.")] = 50,
    output: Format = OutputFormat.table,
) -> None:
    """Stored alerts, newest first, with how their deliveries stand.

    --status firing leaves out a firing alert whose condition has resolved since.

    Example: evalkit alerts list --status firing --format json
    """
    from evalkit.store.alerts import list_alerts as stored_alerts

    if status is not None and status not in ("firing", "resolved"):
        raise ConfigError(f"--status {status!r}: give firing or resolved")
    with service_store("evalkit alerts list") as store:
        alerts = stored_alerts(store, rule=rule, status=status, limit=limit)
    print_listing(
        alerts,
        output,
        title="alerts",
        columns=["alert", "raised (UTC)", "status", "severity", "key", "title", "deliveries"],
        row=lambda alert: [
            alert.alert_id,
            f"{alert.created_at:%Y-%m-%d %H:%M:%S}",
            alert.status,
            alert.severity,
            alert.dedup_key,
            alert.title[:70],
            ", ".join(
                f"{sink}: {_delivery(state, alert.delivery_errors.get(sink), width=80)}"
                for sink, state in alert.deliveries.items()
            )
            or "-",
        ],
    )


def _delivery(state: str, error: str | None, *, width: int | None = None) -> str:
    """A delivery's state, with the last error of one not made (``width`` characters of it
    at most): a refused alert says why wherever it is listed."""
    if error is None:
        return state
    if width is not None and len(error) > width:
        error = error[: width - 1] + "…"
    return f"{state} ({error})"


@alerts_app.command("show")
def show_alert(
    alert_id: Annotated[str, typer.Argument(help="Alert id (see `evalkit alerts list`).")],
    output: Format = OutputFormat.table,
) -> None:
    """One alert: its evidence, links and every delivery attempt.

    Example: evalkit alerts show 20261121T020512-4f1c2a9e0b11 --format json
    """
    from evalkit.errors import NotFoundError
    from evalkit.store.alerts import alert_deliveries, get_alert, resolution_of

    with service_store("evalkit alerts show") as store:
        alert = get_alert(store, alert_id)
        if alert is None:
            raise NotFoundError(f"no alert {alert_id!r}; list them with `evalkit alerts list`")
        attempts = alert_deliveries(store, alert_id)
        resolution = resolution_of(store, alert_id)
    resolved_by = (
        None
        if resolution is None
        else {key: resolution.to_dict()[key] for key in ("alert_id", "created_at")}
    )
    data = {
        **alert.to_dict(),
        "resolved_by": resolved_by,
        "attempts": [attempt.to_dict() for attempt in attempts],
    }
    if output is OutputFormat.json:
        emit_json(data)
        return
    closed = {}
    if alert.status == "firing":
        closed["resolved"] = (
            "no, still firing"
            if resolution is None
            else f"{resolution.created_at:%Y-%m-%d %H:%M:%S} UTC by {resolution.alert_id}"
        )
    console.print(
        key_values(
            f"alert {alert.alert_id}",
            {
                "status": alert.status,
                "severity": alert.severity,
                "key": alert.dedup_key,
                "title": alert.title,
                "summary": alert.summary,
                "fired at": f"{alert.fired_at:%Y-%m-%d %H:%M:%S} UTC",
                **closed,
                **{
                    f"delivery {sink}": _delivery(state, alert.delivery_errors.get(sink))
                    for sink, state in alert.deliveries.items()
                },
                **{f"link {name}": target for name, target in alert.links.items()},
            },
        )
    )
    console.print_json(json.dumps(dict(alert.evidence), default=str))
    rows = [
        [a.sink, a.attempt, f"{a.attempted_at:%H:%M:%S}", a.ok, a.status_code, a.error or ""]
        for a in attempts
    ]
    console.print(
        table("delivery attempts", ["sink", "#", "at (UTC)", "ok", "status", "error"], rows)
    )


@alerts_app.command("evaluate")
def evaluate(
    rule: Annotated[
        list[str] | None, typer.Option(help="Only this rule (repeatable; default: all enabled).")
    ] = None,
    deliver: Annotated[bool, typer.Option(help="Deliver the outbox afterwards.")] = True,
    output: Format = OutputFormat.table,
) -> None:
    """Evaluate the alert rules now and store (and by default deliver) what they raise.

    Example: evalkit alerts evaluate --rule precision-drop --format json
    """
    from evalkit.alerts import alert_payload, build_sinks, evaluate_rules
    from evalkit.scheduler import service_config

    current = settings()
    config = service_config(current)
    for name in rule or ():
        config.alerts.rule(name)
    sinks = build_sinks(config.alerts)
    access = store_access(current, "evalkit alerts evaluate")
    with access("alerts: evaluating rules") as store:
        evaluation = evaluate_rules(store, config.alerts, sinks, only=rule)
    delivery = deliver_outbox(config, sinks, access, quiet=True) if deliver else None
    if output is OutputFormat.json:
        emit_json(
            {
                "evaluated": list(evaluation.evaluated),
                "errors": dict(evaluation.errors),
                "alerts": [alert_payload(alert) for alert in evaluation.alerts],
                "delivery": delivery,
            }
        )
    else:
        rows = [
            [a.alert_id, a.status.value, a.severity.value, a.dedup_key, a.title[:80]]
            for a in evaluation.alerts
        ]
        console.print(table("raised", ["alert", "status", "severity", "key", "title"], rows))
        for name, error in evaluation.errors.items():
            say(f"rule {name} failed: {error}")
    if evaluation.errors:
        raise typer.Exit(DELIVERY_FAILED)


@alerts_app.command("deliver")
def deliver(output: Format = OutputFormat.table) -> None:
    """Send every outbox delivery that is due now (evalkit serve does this on its own).

    Example: evalkit alerts deliver --format json
    """
    from evalkit.alerts import build_sinks
    from evalkit.scheduler import service_config

    current = settings()
    config = service_config(current)
    sinks = build_sinks(config.alerts)
    summary = deliver_outbox(
        config, sinks, store_access(current, "evalkit alerts deliver"), quiet=True
    )
    if output is OutputFormat.json:
        emit_json(summary)
    else:
        console.print(key_values("outbox", summary))
    if summary["failed"] or summary["abandoned"] or summary["errors"]:
        raise typer.Exit(DELIVERY_FAILED)


@alerts_app.command("test")
def check_sinks(
    sink: Annotated[
        list[str] | None, typer.Option(help="Only this sink (repeatable; default: all).")
    ] = None,
    severity: Annotated[str, typer.Option(help="warning or critical.")] = "warning",
    output: Format = OutputFormat.table,
) -> None:
    """Send a test alert to the sinks (not stored); exit 3 when one fails.

    Example: evalkit alerts test --sink oncall
    """
    from evalkit.alerts import alerts_config, build_sinks, probe_alert
    from evalkit.records import AlertSeverity

    config = alerts_config(settings())
    if severity not in ("warning", "critical"):
        raise ConfigError(f"--severity {severity!r}: use warning or critical")
    sinks = build_sinks(config)
    chosen = sink or sorted(sinks)
    unknown = [name for name in chosen if name not in sinks]
    if unknown:
        raise ConfigError(
            f"no sink named {', '.join(unknown)} (configured: {', '.join(sorted(sinks))})"
        )
    alert = probe_alert(AlertSeverity(severity))
    results = []
    for name in chosen:
        outcome = sinks[name].send(alert)
        results.append(
            {
                **sinks[name].describe(),
                "ok": outcome.ok,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "ms": round(outcome.duration_ms, 1),
            }
        )
    if output is OutputFormat.json:
        emit_json(results)
    else:
        rows = [
            [r["name"], r["kind"], r["target"], r["ok"], r["status_code"], r["error"] or ""]
            for r in results
        ]
        console.print(table("sink test", ["sink", "kind", "target", "ok", "status", "error"], rows))
    if not all(result["ok"] for result in results):
        raise typer.Exit(DELIVERY_FAILED)
