"""Where alerts go: a webhook, a command, or the log.

Each kind is registered in ``SINK_KINDS``; ``register_sink_kind`` adds more. ``send`` makes
one delivery attempt and returns a ``DeliveryResult``, never raising for a failed delivery;
the outbox decides when to try again. Secrets are read from the environment when the sink is
built and never appear in ``describe()``, a log line or a stored error: every message passes
through the sink's ``Redactor``, and URLs show ``scheme://host`` only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalkit.alerts.model import Alert, AlertStatus, DeliveryResult
from evalkit.alerts.payload import alert_payload, encode, signed_headers, slack_body
from evalkit.clock import utc_now
from evalkit.config import Duration, SinkConfig
from evalkit.errors import ConfigError
from evalkit.records import AlertSeverity
from evalkit.redaction import (
    Redactor,
    http_url_problem,
    masked_excerpt,
    redact_known,
    register_secrets,
    url_secrets,
)
from evalkit.registry import register_named
from evalkit.retry import RetryPolicy, retry_after_seconds

if TYPE_CHECKING:
    from evalkit.alerts.configured import AlertsConfig, ConfiguredSink

__all__ = [
    "DEFAULT_LOG_SINK",
    "REFUSED_EXIT",
    "SINK_KINDS",
    "CommandSink",
    "LogSink",
    "Redactor",
    "Sink",
    "SinkKind",
    "WebhookSink",
    "build_sinks",
    "probe_alert",
    "public_url",
    "register_sink_kind",
]

DEFAULT_LOG_SINK = "log"
"""Name of the sink used when the configuration defines none: alerts go to the log."""

_log = logging.getLogger("evalkit.alerts")
_STDERR_CHARS = 300
_RETRYABLE = frozenset({408, 425, 429})
REFUSED_EXIT = 65
"""The exit status (``EX_DATAERR`` of sysexits.h) by which a command sink refuses an alert for
good: it is abandoned, not retried. Any other non-zero status is retried."""


def public_url(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what may be shown of it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class Sink(Protocol):
    """Something that delivers alerts."""

    @property
    def name(self) -> str:
        """The configured name (stored with every delivery)."""
        ...

    @property
    def min_severity(self) -> AlertSeverity:
        """Alerts less severe than this are not sent here."""
        ...

    def send(self, alert: Alert) -> DeliveryResult:
        """Make one delivery attempt; never raises for a failed delivery."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the sink is, without any secret."""
        ...


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WebhookParams(_Params):
    """``kind = "webhook"``: POST the alert as JSON to a URL."""

    url: str | None = Field(default=None, description="Receiver URL (not secret).")
    url_env: str | None = Field(
        default=None,
        description="Environment variable holding the URL, for URLs that embed a token "
        "(Slack incoming webhooks).",
    )
    secret_env: str | None = Field(
        default=None,
        description="Environment variable holding the HMAC-SHA256 key that signs each body.",
    )
    format: Literal["json", "slack"] = Field(
        default="json", description="json: evalkit's payload; slack: a Slack-compatible body."
    )
    timeout: Duration = Field(default=10.0, gt=0, description="Seconds per request.")
    retries: int = Field(
        default=3,
        ge=0,
        description="Immediate retries of a failed request (then the outbox retries later).",
    )
    backoff: Duration = Field(
        default=0.5, description="First retry wait; doubles each retry, plus random jitter."
    )
    max_backoff: Duration = Field(default=30.0, description="Longest wait between retries.")
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers, each read from an environment variable: "
        '{"Authorization" = "ONCALL_TOKEN_HEADER"}.',
    )
    verify_tls: bool = Field(default=True, description="Check the receiver's TLS certificate.")

    @field_validator("url")
    @classmethod
    def _web_url(cls, url: str | None) -> str | None:
        if url is not None and not _is_web_url(url):
            raise ValueError("url must be an http:// or https:// URL with a host")
        return url

    @model_validator(mode="after")
    def _one_url(self) -> WebhookParams:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self


def _is_web_url(url: str) -> bool:
    return http_url_problem(url) is None


class CommandParams(_Params):
    """``kind = "command"``: run a program with the JSON payload on its standard input."""

    command: list[str] = Field(
        min_length=1, description='Program and arguments, e.g. ["/usr/local/bin/page", "-q"].'
    )
    timeout: Duration = Field(default=30.0, gt=0, description="Seconds before it is killed.")
    cwd: Path | None = Field(default=None, description="Working directory of the program.")


class LogParams(_Params):
    """``kind = "log"``: write the alert to evalkit's log, or append it to a JSON-lines file."""

    path: Path | None = Field(
        default=None, description="Append one JSON line per alert here (default: the log)."
    )


def _env(name: str, *, sink: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"alert sink '{sink}': the environment variable {name} is not set; it must hold "
            f"the {what}"
        )
    return value


def _elapsed(began: float) -> float:
    return (time.perf_counter() - began) * 1000.0


class _NamedSink:
    """The name and severity floor every sink is configured with."""

    _name: str
    _min_severity: AlertSeverity

    @property
    def name(self) -> str:
        """The configured name."""
        return self._name

    @property
    def min_severity(self) -> AlertSeverity:
        """Alerts less severe than this are not sent here."""
        return self._min_severity

    def _described(self, kind: str, target: str, **more: Any) -> dict[str, Any]:
        """What every ``describe`` says: name, kind, target, ``more``, severity floor."""
        return {
            "name": self._name,
            "kind": kind,
            "target": target,
            **more,
            "min_severity": self._min_severity.value,
        }


class _DeliveryError(Exception):
    """One failed delivery attempt: the error to report, the HTTP status, whether to retry.

    A 3xx or 4xx that is not retried is permanent: the receiver refuses this body at this
    URL (or, with a redirect, sends it elsewhere, which is not followed), and will again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.permanent = not retryable and status is not None and 300 <= status < 500


class WebhookSink(_NamedSink):
    """POSTs each alert, signed when a secret is configured; see ``WebhookParams``."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        min_severity: AlertSeverity = AlertSeverity.warning,
        secret: str | None = None,
        body_format: str = "json",
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        headers: Mapping[str, str] | None = None,
        verify_tls: bool = True,
        url_is_secret: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._name = name
        self._url = url
        self._min_severity = min_severity
        self._secret = secret
        self._format = body_format
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._verify = verify_tls
        self._sleep = sleep
        self._url_is_secret = url_is_secret
        # A receiver that asks for a longer wait than max_backoff is not retried within the
        # call: the outbox tries again at the time it asked for, never before.
        self._retry = RetryPolicy(
            retries=retries,
            backoff=backoff,
            max_wait=max_backoff,
            retryable=lambda error: (
                isinstance(error, _DeliveryError)
                and error.retryable
                and (error.retry_after is None or error.retry_after <= max_backoff)
            ),
            retry_after=lambda error: (
                error.retry_after if isinstance(error, _DeliveryError) else None
            ),
        )
        parts = urlsplit(url)
        hidden = [secret, *self._headers.values(), parts.password, parts.query, *url_secrets(url)]
        if url_is_secret:
            hidden += [url, parts.path]
        self.redact = Redactor(hidden)
        register_secrets(hidden)

    def describe(self) -> dict[str, Any]:
        """Kind, host, body format and whether bodies are signed."""
        signed = self._secret is not None
        return self._described("webhook", public_url(self._url), format=self._format, signed=signed)

    def body(self, alert: Alert) -> bytes:
        """The bytes this sink sends for ``alert``."""
        return encode(slack_body(alert) if self._format == "slack" else alert_payload(alert))

    def send(self, alert: Alert) -> DeliveryResult:
        """POST the alert; retry connection errors, timeouts, 408/425/429 and 5xx, after
        the wait a 429 or 503 asks for in ``Retry-After`` when it gives one. Another 4xx, or
        a redirect (never followed: the signed body and the headers would go elsewhere), is
        a permanent refusal. A failure's error quotes the receiver's reason (its body, or
        where a redirect points)."""
        body = self.body(alert)
        began = time.perf_counter()
        tries = 0
        with httpx.Client(
            timeout=self._timeout, verify=self._verify, follow_redirects=False
        ) as client:

            def attempt() -> int:
                nonlocal tries
                tries += 1
                headers = {**signed_headers(body, alert=alert, secret=self._secret)}
                headers.update(self._headers)
                try:
                    response = client.post(self._url, content=body, headers=headers)
                except httpx.HTTPError as failure:
                    message = self.redact(f"{type(failure).__name__}: {failure}")
                    raise _DeliveryError(message, status=None, retryable=True) from failure
                status = response.status_code
                if 200 <= status < 300:
                    return status
                raise _DeliveryError(
                    f"HTTP {status} from {public_url(self._url)}{self._reason(response)}",
                    status=status,
                    retryable=status >= 500 or status in _RETRYABLE,
                    retry_after=retry_after_seconds(response.headers.get("Retry-After"))
                    if status in (429, 503)
                    else None,
                )

            try:
                status = self._retry.call(attempt, sleep=self._sleep)
            except _DeliveryError as failure:
                return DeliveryResult(
                    ok=False,
                    duration_ms=_elapsed(began),
                    status_code=failure.status,
                    error=str(failure),
                    tries=tries,
                    retry_after=failure.retry_after,
                    permanent=failure.permanent,
                )
        return DeliveryResult(ok=True, duration_ms=_elapsed(began), status_code=status, tries=tries)

    def _reason(self, response: httpx.Response) -> str:
        """``": <the receiver's reason>"``: where a redirect points (only its host when the
        configured URL is a secret), else the start of the body of a refusal, on one line
        and masked (Slack answers ``invalid_payload``, a JSON receiver its error object); an
        HTML error page or an empty body gives nothing (the status says it all)."""
        location = response.headers.get("Location")
        if response.is_redirect and location:
            target = str(response.url.join(location))
            shown = public_url(target) if self._url_is_secret else self.redact(target)
            return f": redirects to {shown}, which is not followed: configure that URL"
        if "html" in response.headers.get("Content-Type", "").lower():
            return ""
        text = " ".join(response.text.split())
        return f": {masked_excerpt(text, _STDERR_CHARS, mask=self.redact)}" if text else ""


class CommandSink(_NamedSink):
    """Runs a program with the JSON payload on stdin; exit status 0 means delivered,
    ``REFUSED_EXIT`` (65) refused for good, any other status a failure to retry.

    The program also gets ``EVALKIT_ALERT_ID``, ``EVALKIT_ALERT_STATUS``,
    ``EVALKIT_ALERT_SEVERITY`` and ``EVALKIT_ALERT_RULE`` in its environment.
    """

    def __init__(
        self,
        *,
        name: str,
        command: Sequence[str],
        min_severity: AlertSeverity = AlertSeverity.warning,
        timeout: float = 30.0,
        cwd: Path | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self._name = name
        self._command = list(command)
        self._min_severity = min_severity
        self._timeout = timeout
        self._cwd = cwd
        register_secrets(secrets)

    def redact(self, text: str) -> str:
        """``text`` with every secret the process holds masked, this sink's (registered
        above) and the others': the program may print another sink's token or the judge's
        key."""
        return redact_known(text)

    def describe(self) -> dict[str, Any]:
        """Kind and program (its arguments are configuration, not secrets)."""
        return self._described("command", Path(self._command[0]).name)

    def send(self, alert: Alert) -> DeliveryResult:
        """Run the program once with the payload on stdin."""
        began = time.perf_counter()
        env = {
            **os.environ,
            "EVALKIT_ALERT_ID": alert.alert_id,
            "EVALKIT_ALERT_STATUS": alert.status.value,
            "EVALKIT_ALERT_SEVERITY": alert.severity.value,
            "EVALKIT_ALERT_RULE": alert.rule,
        }
        try:
            # Its own process group, so that a timeout stops what it started too (the
            # `curl` of `sh -c 'curl ... | tee'`), not only its first process: under
            # `evalkit serve` the rest would run on, one more at every retry.
            with subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self._cwd,
                env=env,
                start_new_session=True,
            ) as child:
                try:
                    _, stderr_bytes = child.communicate(
                        encode(alert_payload(alert)), timeout=self._timeout
                    )
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
                    return DeliveryResult(
                        ok=False,
                        duration_ms=_elapsed(began),
                        error=f"{Path(self._command[0]).name} did not finish within "
                        f"{self._timeout:g} s",
                    )
        except OSError as failure:
            return DeliveryResult(
                ok=False,
                duration_ms=_elapsed(began),
                error=self.redact(f"cannot run {self._command[0]}: {failure.strerror}"),
            )
        if child.returncode == 0:
            return DeliveryResult(ok=True, duration_ms=_elapsed(began))
        stderr = masked_excerpt(
            stderr_bytes.decode(errors="replace").strip(),
            _STDERR_CHARS,
            tail=True,
            mask=self.redact,
        )
        refused = child.returncode == REFUSED_EXIT
        return DeliveryResult(
            ok=False,
            duration_ms=_elapsed(began),
            error=self.redact(
                f"{Path(self._command[0]).name} exited with {child.returncode}"
                + (" (refused for good)" if refused else "")
                + (f": {stderr}" if stderr else "")
            ),
            permanent=refused,
        )


class LogSink(_NamedSink):
    """Writes alerts to the ``evalkit.alerts`` logger, or appends them to a JSON-lines file."""

    def __init__(
        self,
        *,
        name: str,
        min_severity: AlertSeverity = AlertSeverity.warning,
        path: Path | None = None,
    ) -> None:
        self._name = name
        self._min_severity = min_severity
        self._path = path

    def describe(self) -> dict[str, Any]:
        """Kind and file (if any)."""
        return self._described("log", str(self._path) if self._path else "log")

    def send(self, alert: Alert) -> DeliveryResult:
        """Log the alert (or append it to the file)."""
        began = time.perf_counter()
        if self._path is not None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with self._path.open("ab") as handle:
                    handle.write(encode(alert_payload(alert)) + b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as failure:
                return DeliveryResult(
                    ok=False,
                    duration_ms=_elapsed(began),
                    error=f"cannot append to {self._path}: {failure.strerror}",
                )
            return DeliveryResult(ok=True, duration_ms=_elapsed(began))
        if alert.status is AlertStatus.resolved:
            level = logging.INFO
        else:
            level = logging.ERROR if alert.severity is AlertSeverity.critical else logging.WARNING
        _log.log(
            level,
            "alert %s [%s] %s: %s (%s)",
            alert.status.value,
            alert.severity.value,
            alert.dedup_key,
            alert.title,
            alert.summary,
        )
        return DeliveryResult(ok=True, duration_ms=_elapsed(began))


@dataclass(frozen=True, slots=True)
class SinkKind:
    """A sink kind: the model of its configuration fields and how to build one."""

    name: str
    params: type[BaseModel]
    build: Callable[[SinkConfig, Any], Sink]
    description: str


def _build_webhook(config: SinkConfig, params: WebhookParams) -> Sink:
    if params.url_env is not None:
        url = _env(params.url_env, sink=config.name, what="webhook URL")
        if not _is_web_url(url):
            raise ConfigError(
                f"alert sink '{config.name}': ${params.url_env} must hold an http:// or "
                "https:// URL with a host"
            )
    else:
        url = str(params.url)
    secret = (
        _env(params.secret_env, sink=config.name, what="webhook signing secret")
        if params.secret_env
        else None
    )
    headers = {
        header: _env(variable, sink=config.name, what=f"value of the {header} header")
        for header, variable in params.headers_env.items()
    }
    return WebhookSink(
        name=config.name,
        url=url,
        min_severity=config.min_severity,
        secret=secret,
        body_format=params.format,
        headers=headers,
        url_is_secret=params.url_env is not None,
        **params.model_dump(include={"timeout", "retries", "backoff", "max_backoff", "verify_tls"}),
    )


# The command and log sinks' fields are their constructors' keywords, one for one.
def _build_command(config: SinkConfig, params: CommandParams) -> Sink:
    return CommandSink(name=config.name, min_severity=config.min_severity, **params.model_dump())


def _build_log(config: SinkConfig, params: LogParams) -> Sink:
    return LogSink(name=config.name, min_severity=config.min_severity, **params.model_dump())


SINK_KINDS: dict[str, SinkKind] = {}
"""Sink kinds by name: ``webhook``, ``command``, ``log`` (and any registered later)."""


def register_sink_kind(kind: SinkKind) -> None:
    """Make a sink kind available to ``[[alerts.sinks]]`` (a name is registered once)."""
    register_named(SINK_KINDS, kind, what="sink kind")


register_sink_kind(
    SinkKind("webhook", WebhookParams, _build_webhook, "POST JSON (or a Slack body) to a URL")
)
register_sink_kind(
    SinkKind("command", CommandParams, _build_command, "run a program, payload on stdin")
)
register_sink_kind(SinkKind("log", LogParams, _build_log, "evalkit's log or a JSON-lines file"))


def build_sinks(config: AlertsConfig) -> dict[str, Sink]:
    """The configured sinks by name; with none configured, one log sink named ``log``.

    Raises ConfigError when an environment variable a sink needs is not set.
    """
    if not config.sinks:
        return {DEFAULT_LOG_SINK: LogSink(name=DEFAULT_LOG_SINK)}
    return {sink.name: _build(sink) for sink in config.sinks}


def _build(sink: ConfiguredSink) -> Sink:
    return SINK_KINDS[sink.config.kind].build(sink.config, sink.params)


def probe_alert(severity: AlertSeverity = AlertSeverity.warning) -> Alert:
    """A harmless alert for checking that sinks are reachable (``evalkit alerts test``)."""
    now = utc_now()
    return Alert(
        alert_id=f"{now:%Y%m%dT%H%M%S}-probe",
        rule="evalkit-probe",
        kind="probe",
        dedup_key="evalkit-probe:probe",
        subject="probe",
        status=AlertStatus.firing,
        severity=severity,
        title="evalkit test alert",
        summary="A test notification sent by `evalkit alerts test`; nothing is wrong.",
        evidence={"test": True},
        links={},
        fired_at=now,
        created_at=now,
    )
