"""What every job kind shares: the context a running job gets, how a job ended, the kind
record, and the parameter bases (``JOB_KINDS`` itself is ``evalkit.scheduler.jobs``'s).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from evalkit.config.retriever import FactoryOptions
from evalkit.errors import (
    ConfigError,
    EvalkitError,
    MeasureError,
    StoreError,
    WorkInterruptedError,
)
from evalkit.pipeline import canonical_measures
from evalkit.retrievers.factory import RetrieverOptions, build_retriever

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.retrievers.base import Retriever
    from evalkit.store.access import WriterAccess
    from evalkit.store.runs import RunRecord
    from evalkit.store.store import Store

__all__ = [
    "JOB_STATUS_OF_RUN",
    "JobCancelledError",
    "JobContext",
    "JobKind",
    "JobOutcome",
    "JobParams",
    "RetrieverParams",
    "checked_by",
    "checked_measures",
    "refused",
]


class JobCancelledError(WorkInterruptedError):
    """The job was asked to stop (the service is shutting down)."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a job ended: ``succeeded``, ``partial`` or ``failed``, the runs it stored, a
    JSON-able summary, and an error for people when it did not fully succeed."""

    status: str = "succeeded"
    run_ids: tuple[str, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of_run(cls, run: RunRecord, summary: Mapping[str, Any]) -> JobOutcome:
        """The outcome of a job that made one run: the run's status as the job's
        (``JOB_STATUS_OF_RUN``), its id, and its error."""
        return cls(
            status=JOB_STATUS_OF_RUN[run.status],
            run_ids=(run.run_id,),
            summary=summary,
            error=run.error,
        )


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running job gets: its name, settings, the store, and a way to be stopped.

    ``store`` is the store, open for the whole job, for kinds that hold it
    (``JobKind.holds_store``); ``access`` opens it for short stretches, for kinds that use
    it without holding it; both are None for kinds that do not use it
    (``JobKind.uses_store``). ``pinned_runs`` are the baseline runs alert rules compare
    against.
    """

    job: str
    settings: Settings
    cancel: threading.Event
    store: Store | None = None
    access: WriterAccess | None = None
    pinned_runs: tuple[str, ...] = ()
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("evalkit.scheduler"))

    def require_store(self) -> Store:
        """The store, open for the whole job (StoreError if this kind was declared not to
        use it, or not to hold it: ``require_access``)."""
        if self.store is None:
            raise StoreError(f"job {self.job}: this job kind does not hold the store")
        return self.store

    def require_access(self) -> WriterAccess:
        """The access that opens the store for a short stretch at a time (StoreError if
        this kind was declared to hold the store, or not to use it)."""
        if self.access is None:
            raise StoreError(f"job {self.job}: this job kind holds the store, or does not use it")
        return self.access

    def check_cancelled(self) -> None:
        """Raise JobCancelledError when the service has asked jobs to stop."""
        if self.cancel.is_set():
            raise JobCancelledError(
                # The job run's status says "interrupted", its row or log line the job.
                "evalkit serve is stopping",
                reason=f"evalkit serve is stopping (job {self.job})",
            )

    def progress(self, done: int, total: int | None) -> None:
        """A progress callback for the pipeline: stops the job between batches when asked."""
        self.check_cancelled()


@dataclass(frozen=True, slots=True)
class JobKind:
    """A job kind: its configuration model, its function, and how it uses the store.

    ``uses_store`` False: the job runs without the store (a ``command`` gets it to itself).
    ``holds_store``: the store is open for the whole run (``JobContext.store``); False: the
    job opens it only for short stretches through ``JobContext.access``, as a kind that
    spends long replaying against a live retriever does.
    """

    name: str
    params: type[BaseModel]
    run: Callable[[JobContext, Any], JobOutcome]
    description: str
    uses_store: bool = True
    holds_store: bool = True


@contextmanager
def refused(error: type[EvalkitError] = ConfigError) -> Iterator[None]:
    """Inside a field validator: ``error`` raised in the block becomes the ValueError that
    pydantic reports under the field's name, so a bad job is refused when the configuration
    is read rather than at its first run."""
    try:
        yield
    except error as raised:
        raise ValueError(str(raised)) from raised


def checked_by(check: Callable[[Any], object]) -> AfterValidator:
    """A field validator (for ``Annotated``) that runs ``check`` on a value other than None
    and keeps the value; the ConfigError ``check`` raises refuses it (``refused``)."""

    def validate(value: Any) -> Any:
        if value is not None:
            with refused():
                check(value)
        return value

    return AfterValidator(validate)


def checked_measures(names: list[str]) -> list[str]:
    """``names`` as canonical measure names (``P@10`` is ``precision@10``), for a field
    validator: a name that does not parse is refused (``refused``)."""
    with refused(MeasureError):
        return canonical_measures(names)


class JobParams(BaseModel):
    """The base of a job kind's parameter model: unknown fields are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RetrieverParams(JobParams):
    """The fields of a job that queries a live retriever (``evalkit run``'s options)."""

    retriever: str | None = Field(
        default=None,
        description="Retriever kind (built-in or plug-in) or module:factory of your own "
        "function (default: collection / http_retriever, else the [retriever] table).",
    )
    retriever_options: FactoryOptions | None = Field(
        default=None,
        description="Keyword arguments of the retriever factory or plug-in (default: the "
        "[retriever] options).",
    )
    collection: str | None = Field(default=None, description="Chroma collection to query.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL.")
    http_retriever: str | None = Field(default=None, description="HTTP retriever URL.")
    where_key: str | None = Field(
        default=None,
        description="Metadata key (pgvector: column) holding each document's tenant.",
    )
    allow_model_mismatch: bool = Field(
        default=False, description="Query a collection built with another model (diagnosis)."
    )

    @property
    def needs_retriever(self) -> bool:
        """Whether the job queries a retriever (a traffic job may only sample)."""
        return True

    def unnamed_retriever(self, settings: Settings) -> str | None:
        """What is missing when the job needs a retriever that neither these fields nor the
        ``[retriever]`` table name; None when nothing is."""
        named = self.retriever or self.collection or self.chroma_url or self.http_retriever
        configured = settings.retriever.kind or settings.retriever.factory
        if not self.needs_retriever or named or configured:
            return None
        return (
            "name the retriever: retriever (a kind or module:factory), collection or "
            "http_retriever, or a [retriever] table for every job that names none"
        )

    @model_validator(mode="after")
    def _valid_collection(self) -> Self:
        with refused():  # a Chroma collection name Chroma would refuse
            self.options()
        return self

    def options(self) -> RetrieverOptions:
        """The retriever options these fields describe."""
        return RetrieverOptions(
            collection=self.collection,
            chroma_url=self.chroma_url,
            http_url=self.http_retriever,
            retriever=self.retriever,
            factory_options=self.retriever_options,
            where_key=self.where_key,
            allow_model_mismatch=self.allow_model_mismatch,
        )

    def build(self, settings: Settings) -> Retriever:
        """The retriever these fields name (the ``[retriever]`` table's when they name none)."""
        return build_retriever(self.options(), settings)


JOB_STATUS_OF_RUN = {"complete": "succeeded", "partial": "partial", "failed": "failed"}
"""The status of a job that made one run, by the run's status."""
