"""The user's own retrievers: a factory named ``module:attribute``, and plug-in packages.

What a factory may return, how it is found and called, and what ``PluginRetriever`` records
of it: docs/retrievers.md, "Your own retriever".
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from evalkit.config import Settings
from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError, EvalkitError, RetrieverError
from evalkit.records import Query, QueryResult
from evalkit.redaction import MASK, is_secret_name, mask_in_text, option_secrets, register_secrets
from evalkit.retrievers.base import (
    IndexSize,
    Retriever,
    checked_description,
    checked_results,
    describe_exception,
    description_of,
    index_size_of,
)
from evalkit.retrievers.kinds import FACTORY_KIND

__all__ = [
    "ENTRY_POINT_GROUP",
    "FACTORY_KIND",
    "FactorySource",
    "PluginRetriever",
    "adapt_retriever",
    "build_from_factory",
    "factory_options",
    "find_plugin",
    "installed_plugins",
    "parse_factory_spec",
    "unreachable",
    "warn_if_shadowed",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

ENTRY_POINT_GROUP = "evalkit.retrievers"
"""The entry-point group a plug-in package declares its retriever factories in."""

MUST_RETURN = (
    "an evalkit Retriever (an object with retrieve(queries, k) -> list[QueryResult]), a "
    "langchain_core.retrievers.BaseRetriever or a llama_index.core BaseRetriever "
    "(docs/retrievers.md, 'Your own retriever')"
)

FACTORY_CONTRACT = f"a factory is a callable that returns {MUST_RETURN}"
"""Said with every error about a factory, so the user learns what evalkit expects of it."""

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_UNREACHABLE_NAME = re.compile(r"Connect|Timeout|TimedOut|Transport|Unavailable|Operational")
_LANGCHAIN = ("langchain_core.retrievers", "BaseRetriever", "evalkit.retrievers.langchain")
_LLAMAINDEX = (
    "llama_index.core.base.base_retriever",
    "BaseRetriever",
    "evalkit.retrievers.llamaindex",
)


@dataclass(frozen=True, slots=True)
class FactorySource:
    """Where a user's retriever comes from: ``module:attribute``, maybe of a plug-in.

    ``kind`` is what runs record as the retriever's kind: ``factory`` for a factory named
    directly, the plug-in's name for an entry point. ``distribution`` is the installed
    package that declared the plug-in (``name version``).
    """

    module: str
    attribute: str
    kind: str = FACTORY_KIND
    plugin: str | None = None
    distribution: str | None = None

    @property
    def spec(self) -> str:
        """``module:attribute``."""
        return f"{self.module}:{self.attribute}"

    @property
    def label(self) -> str:
        """How messages name this factory."""
        if self.plugin is None:
            return f"retriever factory {self.spec!r}"
        origin = f", from {self.distribution}" if self.distribution else ""
        return f"retriever plug-in {self.plugin!r} ({self.spec}{origin})"


def parse_factory_spec(spec: str) -> FactorySource:
    """``module:attribute`` (the attribute may be dotted: ``mod:Class.create``) as a source;
    ConfigError when it is not of that form."""
    module, sep, attribute = spec.strip().partition(":")
    if not sep or not _DOTTED.match(module) or not _DOTTED.match(attribute):
        raise ConfigError(
            f"retriever factory {spec!r} is not module:attribute (e.g. mypkg.search:make); "
            f"{FACTORY_CONTRACT}"
        )
    return FactorySource(module=module, attribute=attribute)


def installed_plugins() -> dict[str, list[EntryPoint]]:
    """The retriever plug-ins of the installed packages, by name (a name two packages
    declare lists both)."""
    found: dict[str, list[EntryPoint]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if not any(known.value == point.value for known in found.get(point.name, [])):
            found.setdefault(point.name, []).append(point)
    return found


def _distribution(point: EntryPoint) -> str | None:
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else None


def find_plugin(name: str) -> FactorySource | None:
    """The installed plug-in called ``name``, or None; ConfigError when two packages declare
    it."""
    points = installed_plugins().get(name)
    if not points:
        return None
    if len(points) > 1:
        declared = "; ".join(f"{point.value} ({_distribution(point)})" for point in points)
        raise ConfigError(
            f"retriever plug-in {name!r} is declared by more than one installed package: "
            f"{declared}; uninstall all but one"
        )
    (point,) = points
    try:
        source = parse_factory_spec(point.value)
    except ConfigError as error:
        raise ConfigError(
            f"retriever plug-in {name!r} ({_distribution(point)}) declares {point.value!r}, "
            "which is not module:attribute; the package's entry point is broken"
        ) from error
    return FactorySource(
        module=source.module,
        attribute=source.attribute,
        kind=name,
        plugin=name,
        distribution=_distribution(point),
    )


def warn_if_shadowed(name: str) -> None:
    """Log that an installed plug-in called ``name`` is not used: a built-in kind has the
    name, and built-in kinds win."""
    for point in installed_plugins().get(name, []):
        logger.warning(
            "the retriever plug-in %r of %s (%s) is not used: %r is a built-in retriever "
            "kind, which wins; give the plug-in's factory as --retriever %s instead",
            name,
            _distribution(point) or "an installed package",
            point.value,
            name,
            point.value,
        )


def _search_path(settings: Settings) -> list[str]:
    """Directories a user's factory module is looked for in before the installed packages."""
    directories = [os.getcwd()]
    if settings.config_file.is_file():
        directories.append(str(settings.config_file.resolve().parent))
    return list(dict.fromkeys(directories))


def _load(source: FactorySource, settings: Settings) -> Callable[..., object]:
    where = f"{source.label} (module {source.module!r}, attribute {source.attribute!r})"
    # As `python -m` does: a module beside the user's evalkit.toml is importable as is.
    for directory in reversed(_search_path(settings)):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(source.module)
    except Exception as error:  # the user's module may fail in any way while it loads
        raise ConfigError(
            f"{where}: cannot import module {source.module!r}: {describe_exception(error)} "
            f"(looked in {', '.join(_search_path(settings))} and the installed packages); "
            f"{FACTORY_CONTRACT}"
        ) from error
    target: object = module
    for part in source.attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as error:
            raise ConfigError(
                f"{where}: module {source.module!r} has no attribute {source.attribute!r} "
                f"({module.__file__ or source.module} defines no {part!r}); {FACTORY_CONTRACT}"
            ) from error
    if not callable(target):
        raise ConfigError(
            f"{where}: {source.spec} is a {type(target).__name__}, not a function; it must "
            f"be a callable that returns {MUST_RETURN}"
        )
    return target


def _is_instance_of(value: object, module: str, name: str) -> bool:
    # A LangChain or LlamaIndex object comes with its package already imported; evalkit
    # never imports one just to find out that the object is something else.
    loaded = sys.modules.get(module)
    base = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(base, type) and isinstance(value, base)


def _framework_adapter(module: str, extra: str, source: FactorySource) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"{source.label} returned a {extra} retriever, but this evalkit has no {extra} "
            f"adapter ({module}): install evalkit-retrieval[{extra.lower()}] ({error})"
        ) from error


def adapt_retriever(
    made: object, source: FactorySource, settings: Settings, *, where_key: str | None = None
) -> Retriever:
    """What a factory returned, as an evalkit ``Retriever``: LangChain and LlamaIndex
    retrievers wrapped in their adapters (given ``where_key``, the tenant filter), an evalkit
    retriever as it is; ConfigError for anything else."""
    config = settings.retriever
    if _is_instance_of(made, *_LANGCHAIN[:2]):
        adapter = _framework_adapter(_LANGCHAIN[2], "LangChain", source)
        wrapped: Retriever = adapter.LangChainRetriever(
            made, id_key=config.id_key, concurrency=config.concurrency, where_key=where_key
        )
        return wrapped
    if _is_instance_of(made, *_LLAMAINDEX[:2]):
        adapter = _framework_adapter(_LLAMAINDEX[2], "LlamaIndex", source)
        wrapped = adapter.LlamaIndexRetriever(
            made, id_key=config.id_key, concurrency=config.concurrency, where_key=where_key
        )
        return wrapped
    if callable(getattr(made, "retrieve", None)):
        plain = PluginRetriever.fill_in(made)
        if where_key is not None and not description_of(plain).get("where_key"):
            # evalkit cannot pass a key to a retriever of the user's own: filtering would be
            # asked for and silently not done, every tenant's documents reaching each query.
            raise ConfigError(
                f"`where_key` {where_key}: {source.label} returned a retriever of your own, "
                "which evalkit cannot tell where the tenant is. Filter by each query's "
                "tenant (Query.tenant) in its retrieve() and report the key as 'where_key' "
                "in its describe(), or leave `where_key` out"
            )
        return plain
    returned = type(made)
    raise ConfigError(
        f"{source.label} (module {source.module!r}, attribute {source.attribute!r}) returned "
        f"{returned.__module__}.{returned.__qualname__}, which is not a retriever; it must "
        f"return {MUST_RETURN}"
    )


def factory_options(
    source: FactorySource, settings: Settings, given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The keyword arguments ``source``'s factory is called with.

    ``given`` (a job's own options) wins; else the ``[retriever] options``, when that table
    names this same factory or plug-in, or names no retriever at all (options meant for
    another retriever are not passed to this one).
    """
    if given is not None:
        return dict(given)
    table = settings.retriever
    if table.factory:
        names_it = table.factory.strip() == source.spec and source.plugin is None
    elif table.kind and table.kind != FACTORY_KIND:
        names_it = table.kind == source.plugin
    else:
        names_it = True
    return dict(table.options) if names_it else {}


def build_from_factory(
    source: FactorySource,
    settings: Settings,
    *,
    options: Mapping[str, Any] | None = None,
    where_key: str | None = None,
) -> PluginRetriever:
    """Import ``source``'s factory, call it with its options and adapt what it returns.

    A factory that raises an evalkit error keeps its kind (and exit code), its message
    prefixed with the factory. One that cannot reach its store (``unreachable``: an
    ``OSError`` such as ``ConnectionRefusedError`` or ``TimeoutError``, or a client
    library's connection, timeout or transport error) raises a RetrieverError, as every
    retriever that cannot be reached does; any other exception (a wrong signature, a bad
    option) becomes a ConfigError saying which factory raised what.
    """
    factory = _load(source, settings)
    kwargs = factory_options(source, settings, options)
    register_secrets(option_secrets(kwargs))
    where = f"{source.label} (module {source.module!r}, attribute {source.attribute!r})"
    try:
        made = factory(**kwargs)
    except EvalkitError as error:
        error.args = (f"{where}: {error}", *error.args[1:])
        raise
    except Exception as error:  # the user's code may raise anything; say whose it was
        called = f"{source.spec}({', '.join(f'{key}=...' for key in kwargs)})"
        if unreachable(error):
            raise RetrieverError(
                f"{where}: calling {called} raised {describe_exception(error)}: the "
                "retriever cannot be reached; check that its service is running and the "
                "address in the [retriever] options"
            ) from error
        raise ConfigError(
            f"{where}: calling {called} raised {describe_exception(error)}; fix the factory "
            f"or the [retriever] options it is given ({FACTORY_CONTRACT})"
        ) from error
    adapted = adapt_retriever(made, source, settings, where_key=where_key)
    return PluginRetriever(adapted, made, source, kwargs)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says a service could not be
    reached: an ``OSError`` (refused, reset, timed out, unknown host, a missing path), or an
    exception whose class names a connection, timeout, transport or unavailable service, as
    client libraries name theirs (httpx, psycopg's ``OperationalError``, redis, gRPC)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return True
        if any(_UNREACHABLE_NAME.search(kind.__name__) for kind in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _recorded_option(key: str, value: object) -> object:
    if is_secret_name(key):
        return MASK
    if isinstance(value, str):
        return mask_in_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Sequence):
        return [_recorded_option(key, item) for item in value]
    if isinstance(value, Mapping):
        return {str(name): _recorded_option(str(name), item) for name, item in value.items()}
    return f"<{type(value).__name__}>"


class _Filled:
    """A retriever that has only ``retrieve``, with the protocol's other methods saying it
    cannot tell."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        result: list[QueryResult] = self.inner.retrieve(queries, k)
        return result

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.inner, "describe", None)
        return checked_description(describe()) if callable(describe) else {}

    def index_fingerprint(self) -> str | None:
        fingerprint = getattr(self.inner, "index_fingerprint", None)
        return fingerprint() if callable(fingerprint) else None

    def model_fingerprint(self) -> ModelFingerprint | None:
        fingerprint = getattr(self.inner, "model_fingerprint", None)
        return fingerprint() if callable(fingerprint) else None

    def index_size(self) -> IndexSize | None:
        return index_size_of(self.inner)

    def check(self) -> None:
        _call_if_present(self.inner, "check")

    def verify_model(self) -> None:
        _call_if_present(self.inner, "verify_model")

    def close(self) -> None:
        _call_if_present(self.inner, "close")


def _call_if_present(target: object, method: str) -> None:
    call = getattr(target, method, None)
    if callable(call):
        call()


class PluginRetriever:
    """The retriever a user's factory or plug-in returned, recording where it came from.

    Retrieval, fingerprints, ``check``, ``verify_model`` and ``close`` go to the adapted
    retriever; ``describe()`` is its description (so its collection and tenant filter stay
    visible) plus the factory, the plug-in, the class of the object the factory returned
    and the options it was called with (secret-looking values masked).
    """

    def __init__(
        self,
        retriever: Retriever,
        made: object,
        source: FactorySource,
        options: Mapping[str, Any],
    ) -> None:
        self.retriever = retriever
        self.made = made
        self.source = source
        self._options = {key: _recorded_option(key, value) for key, value in options.items()}

    @staticmethod
    def fill_in(retriever: Any) -> Retriever:
        """``retriever`` when it has the whole protocol, else it with the missing methods."""
        if isinstance(retriever, Retriever):
            return retriever
        return _Filled(retriever)

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """The adapted retriever's results, checked (``checked_results``): a wrong return
        type is a ConfigError naming the factory and what ``retrieve`` must return."""
        answered: object = self.retriever.retrieve(queries, k)
        try:
            return checked_results(queries, answered)
        except EvalkitError as error:
            error.args = (f"{self.source.label}: {error}", *error.args[1:])
            raise

    def describe(self) -> dict[str, Any]:
        """The adapted retriever's description, with the factory it came from; whatever
        else than an evalkit error its ``describe()`` raises is a RetrieverError naming the
        factory (the run records the description before it replays anything)."""
        try:
            inner = checked_description(self._users(self.retriever.describe, "describe"))
        except ConfigError as error:
            raise ConfigError(f"{self.source.label}: {error}") from error
        made = type(self.made)
        description: dict[str, Any] = {
            **inner,
            "kind": self.source.kind,
            "factory": self.source.spec,
            "class": f"{made.__module__}.{made.__qualname__}",
            "options": self._options,
        }
        if inner.get("kind") is not None:
            description["adapter"] = inner["kind"]
        if self.source.plugin is not None:
            description["plugin"] = self.source.plugin
            description["distribution"] = self.source.distribution
        return description

    def _users(self, call: Callable[[], _T], method: str) -> _T:
        """``call()``, a method of the user's retriever: whatever else than an evalkit error
        it raises is a RetrieverError naming the factory and the method."""
        try:
            return call()
        except EvalkitError:
            raise
        except Exception as error:  # the user's code may raise anything; say whose it was
            raise RetrieverError(
                f"{self.source.label}: {method}() raised {describe_exception(error)}"
            ) from error

    def index_fingerprint(self) -> str | None:
        """The adapted retriever's index fingerprint, if it can give one."""
        return self.retriever.index_fingerprint()

    def index_size(self) -> IndexSize | None:
        """The adapted retriever's index size, if it can say (``index_size_of``)."""
        return index_size_of(self.retriever)

    def model_fingerprint(self) -> ModelFingerprint | None:
        """The adapted retriever's model fingerprint; None when evalkit does not embed the
        queries (the retriever encodes them itself, or does not embed)."""
        return self.retriever.model_fingerprint()

    def check(self) -> None:
        """The adapted retriever's ``check()``, when it has one; whatever else than an
        evalkit error it raises is a RetrieverError naming the factory."""
        self._users(lambda: _call_if_present(self.retriever, "check"), "check")

    def verify_model(self) -> None:
        """The adapted retriever's ``verify_model()``, when it has one."""
        _call_if_present(self.retriever, "verify_model")

    def close(self) -> None:
        """Close the adapted retriever, when it can be closed. A ``close()`` that raises is
        logged, not raised: it comes after the run is stored, whose outcome stands."""
        try:
            _call_if_present(self.retriever, "close")
        except Exception as error:  # the user's code may raise anything; say whose it was
            logger.warning(
                "%s: close() raised %s; what was stored stands",
                self.source.label,
                describe_exception(error),
            )
