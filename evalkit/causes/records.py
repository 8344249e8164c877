"""What ``evalkit.causes`` reports: the kinds of probable cause, a cause with its share of
the loss, statement, evidence and link, and the explanation of one comparison."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from evalkit.records.jsonready import JsonReady

__all__ = [
    "CAUSE_KINDS",
    "EVIDENCE_ROWS",
    "Cause",
    "CauseKind",
    "CauseLink",
    "Explanation",
]

EVIDENCE_ROWS: Final = 50
"""Evidence rows kept per cause (the statement gives the full counts)."""


@dataclass(frozen=True, slots=True)
class CauseKind:
    """A kind of probable cause: its name, whether its score is measured query by query
    (else it is the residual share), the dashboard page that proves it, and its meaning."""

    name: str
    measured: bool
    page: str
    description: str


CAUSE_KINDS: Mapping[str, CauseKind] = {
    kind.name: kind
    for kind in (
        CauseKind(
            "missing_from_index",
            True,
            "index_health",
            "relevant documents the baseline retrieved are missing from the index (audit)",
        ),
        CauseKind(
            "stale_documents",
            True,
            "index_health",
            "relevant documents the baseline retrieved changed at the source since indexing, "
            "or their stored text was replaced in the index (audit)",
        ),
        CauseKind(
            "unreflected_changes",
            True,
            "index_health",
            "relevant documents the baseline retrieved changed at the source after it ran, and "
            "the index had not reflected the change when the candidate ran (freshness checks)",
        ),
        CauseKind(
            "failed_queries",
            True,
            "query",
            "queries whose retrieval failed in the candidate (a partial run), counted as 0",
        ),
        CauseKind(
            "goldset_changed",
            True,
            "quality",
            "the two runs replayed goldset versions whose judgments differ",
        ),
        CauseKind(
            "k_changed",
            True,
            "quality",
            "the candidate retrieved fewer documents per query than the baseline ranked "
            "relevant ones at",
        ),
        CauseKind(
            "crowded_by_duplicates",
            True,
            "index_health",
            "the candidate ranked more extra copies of duplicate documents (audit) in the "
            "top k than the baseline did, pushing relevant documents out",
        ),
        CauseKind(
            "retriever_changed",
            False,
            "compare",
            "the runs replayed different retrievers: another kind, factory or plug-in, other "
            "options, or a description (class, location, settings) that differs",
        ),
        CauseKind(
            "index_model_mismatch",
            False,
            "drift",
            "a canary check or audit found the index built with another embedding model "
            "than the query model",
        ),
        CauseKind(
            "query_model_changed",
            False,
            "quality",
            "the query embedding model differs between the runs (its name, or its canary "
            "embeddings by cosine)",
        ),
        CauseKind(
            "index_changed",
            False,
            "quality",
            "the index fingerprint differs between the runs: it was rebuilt or changed",
        ),
        CauseKind(
            "absent_from_results",
            True,
            "query",
            "relevant documents the baseline retrieved that the candidate retrieved for no "
            "query at all: likely gone from the index (an audit confirms it)",
        ),
        CauseKind(
            "document_drift",
            False,
            "drift",
            "a drift check between the runs found the indexed documents' embeddings moved",
        ),
        CauseKind(
            "query_drift",
            False,
            "drift",
            "a drift check between the runs found the queries' embeddings moved",
        ),
        CauseKind(
            "settings_changed",
            False,
            "compare",
            "the runs differ in relevance threshold or stored measures",
        ),
        CauseKind(
            "index_grew",
            False,
            "index_health",
            "the index holds more documents or vectors than when the baseline ran: more to "
            "search, a probable cause of a latency rise",
        ),
    )
}
"""Every kind of probable cause, in tie-break order."""


@dataclass(frozen=True, slots=True)
class CauseLink(JsonReady):
    """Where a cause's evidence is shown: a dashboard page and its query parameters."""

    page: str
    params: Mapping[str, str]
    label: str

    @property
    def path(self) -> str:
        """``page?query`` relative to the dashboard's root, e.g. ``index_health?audit=...``."""
        return f"{self.page}?{urlencode(dict(self.params))}" if self.params else self.page

    def url(self, root: str | None = None) -> str:
        """The link under the dashboard's ``root`` URL (the bare path without one)."""
        return f"{root.rstrip('/')}/{self.path}" if root else self.path


@dataclass(frozen=True, slots=True)
class Cause:
    """One probable cause of a regression.

    ``score`` is the share (0 to 1) of the primary measure's loss it can account for,
    ``measured`` whether traced query by query or the residual; ``evidence`` holds at most
    ``EVIDENCE_ROWS`` rows behind the one-line ``statement``.
    """

    kind: str
    score: float
    statement: str
    link: CauseLink
    evidence: tuple[Mapping[str, Any], ...] = ()

    @property
    def measured(self) -> bool:
        """Whether the score was traced query by query (else it is the residual share)."""
        return CAUSE_KINDS[self.kind].measured

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "score": round(self.score, 6),
            "measured": self.measured,
            "statement": self.statement,
            "link": self.link.to_dict(),
            "evidence": [dict(row) for row in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """The probable causes of the difference between two runs, best first.

    ``measure`` is the one that dropped most, ``loss`` the sum of its per-query drops the
    scores share out; ``lost_pairs`` counts (query, document) losses, ``lost_documents``
    distinct documents. ``notes`` say what evidence is missing and what would produce it;
    ``evidence`` lists the audits and drift or canary checks read about the index.
    """

    baseline: str
    candidate: str
    goldset: str | None
    measure: str
    decision: str
    delta: float
    loss: float
    lost_queries: int
    lost_documents: int
    lost_pairs: int
    causes: tuple[Cause, ...]
    notes: tuple[str, ...] = ()
    about: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[Mapping[str, Any], ...] = ()

    @property
    def top(self) -> Cause | None:
        """The most probable cause, if any."""
        return self.causes[0] if self.causes else None

    def headline(self) -> str:
        """One line: the verdict and what dropped."""
        return (
            f"{self.decision}: {self.measure} {self.delta:+.4f} from {self.baseline} to "
            f"{self.candidate}; {self.lost_queries} queries dropped, losing "
            f"{self.lost_documents} distinct relevant documents ({self.lost_pairs} query-document "
            "pairs)"
        )

    def evidence_line(self) -> str | None:
        """One line naming the audits and checks read, with when each was made; None when
        none was."""
        if not self.evidence:
            return None
        shown = []
        for row in self.evidence:
            at = str(row["at"]).replace("T", " ")[:16] + " UTC"
            if row["kind"] == "audit":
                checks = ", ".join(row["checks"])
                shown.append(f"audit {row['id']} of {row['collection']} ({at}: {checks})")
            else:
                shown.append(f"{row['stream']} check {row['id']} ({at})")
        return "evidence read: " + "; ".join(shown)

    def to_dict(self, root: str | None = None) -> dict[str, Any]:
        """JSON-ready form; with a dashboard ``root`` URL each cause also carries its ``url``."""
        causes = []
        for cause in self.causes:
            data = cause.to_dict()
            data["url"] = cause.link.url(root)
            causes.append(data)
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "goldset": self.goldset,
            "measure": self.measure,
            "decision": self.decision,
            "delta": self.delta,
            "loss": self.loss,
            "lost_queries": self.lost_queries,
            "lost_documents": self.lost_documents,
            "lost_pairs": self.lost_pairs,
            "causes": causes,
            "notes": list(self.notes),
            "evidence": [dict(row) for row in self.evidence],
            **({"about": dict(self.about)} if self.about else {}),
        }

    def to_text(self, root: str | None = None) -> str:
        """Plain text (for a JUnit failure, which CI shows as it is): the headline, one line
        per cause with its share and link, then the notes."""
        lines = ["Probable causes: " + self.headline() + "."]
        for index, cause in enumerate(self.causes, start=1):
            share = f"{cause.score:.0%}" + ("" if cause.measured else " (residual)")
            lines.append(
                f"{index}. [{cause.kind}] {share} of the loss: {cause.statement}"
                f" (see {cause.link.url(root)})"
            )
        if not self.causes:
            lines.append("No probable cause found in the store.")
        read = self.evidence_line()
        lines += [f"note: {note}" for note in self.notes] + ([read] if read else [])
        return "\n".join(lines) + "\n"

    def to_markdown(self, root: str | None = None) -> str:
        """A Markdown section (for a CI summary or a pull-request comment). Each cause links
        to its dashboard page under ``root``; without one the page is named, not linked: a
        relative link in a pull-request comment or a job summary would lead to a page of
        the forge that does not exist."""
        lines = ["### Probable causes", "", self.headline() + ".", ""]
        if self.causes:
            lines += ["| # | cause | share of loss | statement |", "|---|---|---|---|"]
            for index, cause in enumerate(self.causes, start=1):
                # A line break would end the table's row: the statement stays on its line.
                statement = " ".join(cause.statement.replace("|", "\\|").splitlines())
                where = cause.link.url(root)
                shown = (
                    f"[{cause.link.label}]({where})"
                    if root
                    else f"{cause.link.label}: dashboard page `{where}`"
                )
                lines.append(
                    f"| {index} | `{cause.kind}` | {cause.score:.0%}"
                    f"{'' if cause.measured else ' (residual)'} | {statement} ({shown}) |"
                )
        else:
            lines.append("No probable cause found in the store.")
        read = self.evidence_line()
        lines += [""] + [f"- note: {note}" for note in self.notes] + ([f"- {read}"] if read else [])
        return "\n".join(lines).rstrip() + "\n"
