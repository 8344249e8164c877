"""Masking of configured secrets in every text evalkit stores, logs or prints.

Code that holds a secret registers it (``register_secrets``, ``option_secrets``), and error
text passes through ``redact_known`` before it is stored, logged or printed. A secret is
masked as is, URL-encoded, base64-encoded at any offset and as a URL's Basic auth. This
module imports nothing from evalkit, so every stage may use it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "FIELD_NAMING_OPTIONS",
    "MASK",
    "SECRET_QUERY_PARAMETERS",
    "Redactor",
    "SecretLogFilter",
    "conninfo_secrets",
    "http_url_problem",
    "is_secret_name",
    "mask_in_text",
    "mask_url",
    "masked_excerpt",
    "option_secrets",
    "redact",
    "redact_known",
    "register_secrets",
    "secret_forms",
    "url_secrets",
    "visible",
]

MASK = "***"
# Short values (say "1" or "on") are too likely to occur by chance to be masked usefully.
_MIN_SECRET_LENGTH = 4

#: Query parameter names (compared lowercased, ``-`` read as ``_``) whose values are secrets
#: in a URL although, as an option's name, they would not be (``is_secret_name``): every
#: name that rule calls a secret (``subscription-key``, ``private_token``) is one too.
SECRET_QUERY_PARAMETERS = frozenset(
    {
        # Presigned S3 and Google Cloud Storage URLs:
        "x_amz_signature",
        "x_goog_signature",
        "code",  # Azure Functions' key
    }
)


_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|auth|credential|bearer", re.IGNORECASE)
# Names that are a secret only as the whole name: "session" is one, "use_session" and
# "session_pool_size" are settings; so are "cookie_domain", "signature_version", "sig_figs".
_SECRET_WHOLE_NAMES = frozenset(
    {"session", "session_id", "sessionid", "cookie", "cookies", "sig", "signature"}
)
FIELD_NAMING_OPTIONS = frozenset(
    {
        "where_key",
        "tenant_key",
        "id_key",
        "id_payload_key",
        "text_payload_key",
        "updated_at_key",
        "document_id_keys",
        "dedup_key",
    }
)
"""Options whose value names a field (a metadata or payload key), not a secret: masking
``where_key = "tenant"`` would turn every later "tenant" in a message into ``***``."""
# A base64 run shorter than this is too likely to occur by chance in other encoded data.
_MIN_BASE64_LENGTH = 6
_URLSAFE = str.maketrans("+/", "-_")
_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def secret_forms(secret: str) -> set[str]:
    """The secret and the encoded forms a server may echo it in (URL-encoded, base64)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    return (forms | _base64_forms(secret)) - {""}


def _base64_forms(secret: str) -> set[str]:
    """The base64 characters that encode ``secret`` alone, for each of the three positions
    it can start at in the encoded bytes (standard and URL-safe alphabets).

    Base64 turns each 3 bytes into 4 characters, so the characters at the secret's edges
    also carry bits of its neighbours; only the run between them is the same wherever the
    secret is embedded ("Bearer <key>", "user:<password>", a JSON body).
    """
    data = secret.encode()
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode("ascii")
        first = -(-offset * 8 // 6)
        last = (offset + len(data)) * 8 // 6
        run = encoded[first:last]
        if len(run) >= _MIN_BASE64_LENGTH:
            forms |= {run, run.translate(_URLSAFE)}
    return forms


def is_secret_name(name: str) -> bool:
    """Whether an option's name says its value is a secret (``api_key``, ``token``...);
    the options that name a field (``where_key``, ``FIELD_NAMING_OPTIONS``) do not."""
    normal = name.lower().replace("-", "_")
    if normal in FIELD_NAMING_OPTIONS:
        return False
    return bool(_SECRET_NAME.search(name)) or normal.removeprefix("x_") in _SECRET_WHOLE_NAMES


def option_secrets(options: Mapping[str, object]) -> set[str]:
    """The secrets a table of options holds, through nested tables and lists: values of
    secret-looking names, the passwords and secret query values of URLs, and the values of
    the environment variables that options ending in ``_env`` name (the environment is
    where evalkit's settings keep secrets)."""
    found: set[str] = set()
    for key, value in options.items():
        found |= _secrets_in(str(key), value, secret=False, from_env=False)
    return found


def _secrets_in(key: str, value: object, *, secret: bool, from_env: bool) -> set[str]:
    secret = secret or is_secret_name(key)
    from_env = from_env or key.lower().endswith("_env")
    if isinstance(value, Mapping):
        found: set[str] = set()
        for name, item in value.items():
            found |= _secrets_in(str(name), item, secret=secret, from_env=from_env)
        return found
    if isinstance(value, list | tuple):
        found = set()
        for item in value:
            found |= _secrets_in(key, item, secret=secret, from_env=from_env)
        return found
    if not isinstance(value, str):
        return set()
    if from_env:
        held = os.environ.get(value, "")
        return {held, *url_secrets(held)} if held else set()
    if secret:
        return {value}
    return conninfo_secrets(value) if "://" in value or "password" in value else set()


def mask_in_text(value: str) -> str:
    """``value`` with the secrets a setting's text can carry masked: a URL's userinfo and
    secret query values (``mask_url``) and a libpq ``password=...`` (``host=h password=***``)."""
    masked = mask_url(value) if "://" in value else value
    return _CONNINFO_PASSWORD.sub(
        lambda found: found.group(0)[: found.start(1) - found.start(0)] + MASK, masked
    )


def conninfo_secrets(dsn: str) -> set[str]:
    """The password of a libpq connection string, in URL (``postgresql://u:pw@h/db``) or
    ``key=value`` form (``host=h password=pw``)."""
    found = url_secrets(dsn) if "://" in dsn else set()
    for match in _CONNINFO_PASSWORD.finditer(dsn):
        value = match.group(1)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.add(value)
    return found


def _is_secret_parameter(name: str) -> bool:
    return is_secret_name(name) or name.lower().replace("-", "_") in SECRET_QUERY_PARAMETERS


def url_secrets(url: str) -> set[str]:
    """Every secret a URL carries: its password, secret query values, and their forms.

    The ``user:password`` pair is also given in its base64 Basic-auth form, as HTTP clients
    send it in an ``Authorization`` header.
    """
    parts = urlsplit(url)
    found: set[str] = set()
    if parts.password:
        found |= secret_forms(parts.password)
        for user, password in {
            (parts.username or "", parts.password),
            (unquote(parts.username or ""), unquote(parts.password)),
        }:
            found |= secret_forms(unquote(password))
            pair = f"{user}:{password}".encode()
            found.add(base64.b64encode(pair).decode("ascii"))
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and _is_secret_parameter(name) and len(value) >= _min_length_of(name):
            found |= secret_forms(value)
    return found


# Parameters whose name is also an everyday word: their value is masked in the URL it is
# in (mask_url), but registered for masking in every text only when it is as long as a key,
# or "?code=prod" would mask "prod" in everything printed afterwards.
_GENERIC_PARAMETER_MIN_LENGTH = {"code": 16}


def _min_length_of(name: str) -> int:
    return _GENERIC_PARAMETER_MIN_LENGTH.get(name.lower().replace("-", "_"), 0)


# Control characters (but tab and newline) and the bidirectional overrides and isolates: in a
# query text from a production log they would move a terminal's cursor, recolour it, or
# reorder what is shown around them (an id reading `rtltxt.exe`).
_UNSEEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every character that would act on a terminal or page instead of
    showing (control characters but tab and newline, bidirectional overrides and isolates)
    written as an escape (``\\u202e``)."""
    return _UNSEEN.sub(lambda found: ascii(found.group())[1:-1], text)


def http_url_problem(url: str) -> str | None:
    """What keeps ``url`` from being an http:// or https:// URL with a host (and a port
    from 0 to 65535, when it names one), or None when nothing does."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (reading it checks it: a port out of range raises)
    except ValueError as error:
        return str(error)
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "names no host"
    return None


# A name=value pair of a query string, read without parsing the URL around it.
_RAW_PARAMETER = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def _mask_raw_parameter(found: re.Match[str]) -> str:
    separator, name, value = found.groups()
    return f"{separator}{name}={MASK if _is_secret_parameter(unquote(name)) else value}"


def mask_url(url: str) -> str:
    """``url`` without its userinfo and with secret query values replaced by ``***`` (a URL
    too malformed to take apart loses everything before its host's last ``@``, and its
    secret query values are found in the raw text)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        without_userinfo = re.sub(r"^([^:/?#]+://)?[^/?#]*@", r"\1", url)
        return _RAW_PARAMETER.sub(_mask_raw_parameter, without_userinfo)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = parts.hostname or ""
        if port is not None:
            netloc = f"{netloc}:{port}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(_is_secret_parameter(name) for name, _ in pairs):
        query = urlencode(
            [(name, MASK if _is_secret_parameter(name) else value) for name, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (and its encoded forms) as ``***``."""
    return Redactor(secrets)(text)


class Redactor:
    """Replaces every given secret, in each of its forms, with ``***``."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET_LENGTH:
                forms |= secret_forms(secret)
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(
            (form for form in forms if len(form) >= _MIN_SECRET_LENGTH), key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        """``text`` with the secrets masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


class _Registry:
    """The secrets this process holds, and a redactor built over them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self.redactor = Redactor(())

    def add(self, secrets: Iterable[str | None]) -> None:
        new = {secret for secret in secrets if secret and len(secret) >= _MIN_SECRET_LENGTH}
        with self._lock:
            if new - self._known:
                self._known.update(new)
                self.redactor = Redactor(self._known)


_registry = _Registry()


def register_secrets(secrets: Iterable[str | None]) -> None:
    """Remember secrets this process holds, so ``redact_known`` masks them everywhere."""
    _registry.add(secrets)


def redact_known(text: str) -> str:
    """``text`` with every registered secret masked (used where errors become records)."""
    return _registry.redactor(text)


def masked_excerpt(
    text: str, limit: int, *, tail: bool = False, mask: Callable[[str], str] = redact_known
) -> str:
    """The first ``limit`` characters of ``text`` (the last, with ``tail``) once ``mask``
    (by default ``redact_known``) has masked its secrets.

    Masking comes first: a cut through a secret would leave a part of it that no longer
    matches the secret, and so would be kept as is.
    """
    masked = mask(text)
    return masked[max(len(masked) - limit, 0) :] if tail else masked[:limit]


class SecretLogFilter(logging.Filter):
    """Masks every registered secret in the log records it sees (attach to a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, and the traceback and stack it carries, with the
        secrets masked; never drops a record."""
        message = record.getMessage()
        masked = redact_known(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # A handler formats the traceback from exc_text when it is set: the exception's
            # message may quote a URL with its token, or a key an endpoint echoed.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_known(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_known(record.stack_info)
        return True


# httpx logs every request URL (query string included) at INFO.
logging.getLogger("httpx").addFilter(SecretLogFilter())
