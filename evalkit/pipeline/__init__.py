"""Wires the stages together: goldset -> replay -> metrics (and answers) -> store.

The CLI, the scheduler and the tests all call these functions; no stage calls another stage
that comes after it in the data flow. One module per workflow (``goldset``, ``gate``,
``traffic``, ``audit``, ``drift``, ``answers``, ``judging``, ``traffic_labels``,
``goldset_remap``, ``generate``, ``review``, ``sweep``, ``freshness``, ``fuse``),
independent of each other; what they share is the run lifecycle (``runs``), the goldset
run (``goldset_run``), the scoring of a run's answers (``answer_scores``) and the judged
pool (``judge_pool``). This package only re-exports.
"""

from evalkit.engines import results_frame
from evalkit.metrics.defaults import DEFAULT_MEASURES
from evalkit.pipeline.answer_scores import (
    answer_settings,
    run_answer_records,
    score_and_store_answers,
    score_answers_for_run,
    score_run_answers,
)
from evalkit.pipeline.answers import score_answer_file
from evalkit.pipeline.audit import AuditOutcome, audit_collection
from evalkit.pipeline.drift import (
    DriftOutcome,
    check_drift_documents,
    check_drift_embeddings,
    check_drift_metric,
    check_drift_model,
    check_drift_precision,
    check_drift_queries,
    check_traffic_precision,
    collection_vectors,
    save_documents_reference,
)
from evalkit.pipeline.freshness import (
    check_freshness,
    check_named_index_freshness,
    retriever_subject,
)
from evalkit.pipeline.fuse import FusionOutcome, fuse_runs
from evalkit.pipeline.gate import (
    GATE_CANDIDATE_LABEL,
    GATE_EXIT_CODES,
    GateOutcome,
    gate_against_baseline,
    record_baseline,
    replay_candidate,
    write_gate_reports,
)
from evalkit.pipeline.gate import gate_reports as gate_reports
from evalkit.pipeline.generate import GenerationOutcome, generate_goldset
from evalkit.pipeline.goldset import evaluate_query_table
from evalkit.pipeline.goldset_remap import (
    GoldsetRemapRequest,
    RemapOutcome,
    old_corpus_of,
    remap_goldset,
)
from evalkit.pipeline.goldset_run import evaluate_goldset, resolve_goldset
from evalkit.pipeline.judge_pool import (
    CollectionTexts,
    CorpusTexts,
    DocumentTexts,
    JudgingOutcome,
    JudgingPlan,
    corpus_texts,
    judge_pairs,
)
from evalkit.pipeline.judging import (
    AgreementOutcome,
    HolesOutcome,
    judge_run_holes,
    measure_agreement,
)
from evalkit.pipeline.leaderboard import (
    RunLeaderboard,
    comparison_judgments,
    leaderboard_of_runs,
    replay_latency,
    run_reference,
    select_runs,
)
from evalkit.pipeline.review import (
    ItemDetails,
    QueueOutcome,
    ingest_draft,
    queue_disagreements,
    record_review,
    review_item,
    review_queue,
)
from evalkit.pipeline.review_exchange import (
    LabelStudioExport,
    LabelStudioImport,
    export_label_studio,
    import_label_studio,
)
from evalkit.pipeline.review_publish import (
    PublishOutcome,
    ReviewerAgreement,
    publish_goldset,
    reviewer_agreement,
)
from evalkit.pipeline.runs import RunOutcome, default_measures
from evalkit.pipeline.sweep import (
    PointResult,
    Sweep,
    SweepOutcome,
    SweepPlan,
    SweepPoint,
    SweepProgress,
    check_sweep,
    load_sweep,
    pareto_front,
    run_sweep,
    run_sweep_file,
)
from evalkit.pipeline.traffic import (
    ReplaySetup,
    TrafficReplay,
    newest_sample,
    prepare_traffic_replay,
    replay_traffic_window,
    sample_and_replay,
)
from evalkit.pipeline.traffic_labels import (
    WindowEstimate,
    WindowJudging,
    calibration_key,
    estimate_traffic_run,
    judge_traffic_run,
)
from evalkit.records.requests import GatePolicy, TrafficReplayRequest

__all__ = [
    "DEFAULT_MEASURES",
    "GATE_CANDIDATE_LABEL",
    "GATE_EXIT_CODES",
    "AgreementOutcome",
    "AuditOutcome",
    "CollectionTexts",
    "CorpusTexts",
    "DocumentTexts",
    "DriftOutcome",
    "FusionOutcome",
    "GateOutcome",
    "GatePolicy",
    "GenerationOutcome",
    "GoldsetRemapRequest",
    "HolesOutcome",
    "ItemDetails",
    "JudgingOutcome",
    "JudgingPlan",
    "LabelStudioExport",
    "LabelStudioImport",
    "PointResult",
    "PublishOutcome",
    "QueueOutcome",
    "RemapOutcome",
    "ReplaySetup",
    "ReviewerAgreement",
    "RunLeaderboard",
    "RunOutcome",
    "Sweep",
    "SweepOutcome",
    "SweepPlan",
    "SweepPoint",
    "SweepProgress",
    "TrafficReplay",
    "TrafficReplayRequest",
    "WindowEstimate",
    "WindowJudging",
    "answer_settings",
    "audit_collection",
    "calibration_key",
    "check_drift_documents",
    "check_drift_embeddings",
    "check_drift_metric",
    "check_drift_model",
    "check_drift_precision",
    "check_drift_queries",
    "check_freshness",
    "check_named_index_freshness",
    "check_sweep",
    "check_traffic_precision",
    "collection_vectors",
    "comparison_judgments",
    "corpus_texts",
    "default_measures",
    "estimate_traffic_run",
    "evaluate_goldset",
    "evaluate_query_table",
    "export_label_studio",
    "fuse_runs",
    "gate_against_baseline",
    "generate_goldset",
    "import_label_studio",
    "ingest_draft",
    "judge_pairs",
    "judge_run_holes",
    "judge_traffic_run",
    "leaderboard_of_runs",
    "load_sweep",
    "measure_agreement",
    "newest_sample",
    "old_corpus_of",
    "pareto_front",
    "prepare_traffic_replay",
    "publish_goldset",
    "queue_disagreements",
    "record_baseline",
    "record_review",
    "remap_goldset",
    "replay_candidate",
    "replay_latency",
    "replay_traffic_window",
    "resolve_goldset",
    "results_frame",
    "retriever_subject",
    "review_item",
    "review_queue",
    "reviewer_agreement",
    "run_answer_records",
    "run_reference",
    "run_sweep",
    "run_sweep_file",
    "sample_and_replay",
    "save_documents_reference",
    "score_and_store_answers",
    "score_answer_file",
    "score_answers_for_run",
    "score_run_answers",
    "select_runs",
    "write_gate_reports",
]
