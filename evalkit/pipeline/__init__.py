"""Wires the stages together: goldset -> replay -> metrics (and answers) -> store.

The CLI, the scheduler and the tests call these functions; one module per workflow, each
independent of the others, on the shared layers below them (docs/architecture.md lists
both). This package only re-exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.engines import results_frame as results_frame
    from evalkit.metrics.defaults import DEFAULT_MEASURES as DEFAULT_MEASURES
    from evalkit.pipeline.agreement import AgreementOutcome as AgreementOutcome
    from evalkit.pipeline.agreement import measure_agreement as measure_agreement
    from evalkit.pipeline.answer_scores import answer_settings as answer_settings
    from evalkit.pipeline.answer_scores import run_answer_records as run_answer_records
    from evalkit.pipeline.answer_scores import score_and_store_answers as score_and_store_answers
    from evalkit.pipeline.answer_scores import score_answers_for_run as score_answers_for_run
    from evalkit.pipeline.answer_scores import score_run_answers as score_run_answers
    from evalkit.pipeline.answers import score_answer_file as score_answer_file
    from evalkit.pipeline.audit import AuditOutcome as AuditOutcome
    from evalkit.pipeline.audit import audit_collection as audit_collection
    from evalkit.pipeline.compared_runs import comparison_judgments as comparison_judgments
    from evalkit.pipeline.compared_runs import resolve_run as resolve_run
    from evalkit.pipeline.compared_runs import score_reference as score_reference
    from evalkit.pipeline.drift import DriftOutcome as DriftOutcome
    from evalkit.pipeline.drift import check_drift_documents as check_drift_documents
    from evalkit.pipeline.drift import check_drift_embeddings as check_drift_embeddings
    from evalkit.pipeline.drift import check_drift_metric as check_drift_metric
    from evalkit.pipeline.drift import check_drift_precision as check_drift_precision
    from evalkit.pipeline.drift import check_drift_queries as check_drift_queries
    from evalkit.pipeline.drift import check_drift_settings as check_drift_settings
    from evalkit.pipeline.drift import check_traffic_precision as check_traffic_precision
    from evalkit.pipeline.drift import collection_vectors as collection_vectors
    from evalkit.pipeline.drift import query_drift_methods as query_drift_methods
    from evalkit.pipeline.drift import save_documents_reference as save_documents_reference
    from evalkit.pipeline.freshness import check_freshness as check_freshness
    from evalkit.pipeline.freshness import (
        check_named_index_freshness as check_named_index_freshness,
    )
    from evalkit.pipeline.freshness import retriever_subject as retriever_subject
    from evalkit.pipeline.fuse import FusionOutcome as FusionOutcome
    from evalkit.pipeline.fuse import fuse_runs as fuse_runs
    from evalkit.pipeline.gate import GATE_CANDIDATE_LABEL as GATE_CANDIDATE_LABEL
    from evalkit.pipeline.gate import GATE_EXIT_CODES as GATE_EXIT_CODES
    from evalkit.pipeline.gate import GateOutcome as GateOutcome
    from evalkit.pipeline.gate import gate_against_baseline as gate_against_baseline
    from evalkit.pipeline.gate import gate_reports as gate_reports
    from evalkit.pipeline.gate import record_baseline as record_baseline
    from evalkit.pipeline.gate import replay_candidate as replay_candidate
    from evalkit.pipeline.gate import write_gate_reports as write_gate_reports
    from evalkit.pipeline.generate import GenerationOutcome as GenerationOutcome
    from evalkit.pipeline.generate import generate_goldset as generate_goldset
    from evalkit.pipeline.goldset import evaluate_query_table as evaluate_query_table
    from evalkit.pipeline.goldset_remap import GoldsetRemapRequest as GoldsetRemapRequest
    from evalkit.pipeline.goldset_remap import RemapOutcome as RemapOutcome
    from evalkit.pipeline.goldset_remap import old_corpus_of as old_corpus_of
    from evalkit.pipeline.goldset_remap import remap_goldset as remap_goldset
    from evalkit.pipeline.goldset_run import evaluate_goldset as evaluate_goldset
    from evalkit.pipeline.goldset_run import resolve_goldset as resolve_goldset
    from evalkit.pipeline.judge_pool import CollectionTexts as CollectionTexts
    from evalkit.pipeline.judge_pool import CorpusTexts as CorpusTexts
    from evalkit.pipeline.judge_pool import DocumentTexts as DocumentTexts
    from evalkit.pipeline.judge_pool import JudgingOutcome as JudgingOutcome
    from evalkit.pipeline.judge_pool import JudgingPlan as JudgingPlan
    from evalkit.pipeline.judge_pool import corpus_texts as corpus_texts
    from evalkit.pipeline.judge_pool import judge_pairs as judge_pairs
    from evalkit.pipeline.judging import HolesOutcome as HolesOutcome
    from evalkit.pipeline.judging import judge_run_holes as judge_run_holes
    from evalkit.pipeline.leaderboard import RunLeaderboard as RunLeaderboard
    from evalkit.pipeline.leaderboard import describe_run as describe_run
    from evalkit.pipeline.leaderboard import leaderboard_of_runs as leaderboard_of_runs
    from evalkit.pipeline.leaderboard import replay_latency as replay_latency
    from evalkit.pipeline.leaderboard import select_runs as select_runs
    from evalkit.pipeline.model_check import check_drift_model as check_drift_model
    from evalkit.pipeline.review import ItemDetails as ItemDetails
    from evalkit.pipeline.review import QueueOutcome as QueueOutcome
    from evalkit.pipeline.review import ingest_draft as ingest_draft
    from evalkit.pipeline.review import queue_disagreements as queue_disagreements
    from evalkit.pipeline.review import record_review as record_review
    from evalkit.pipeline.review import review_item as review_item
    from evalkit.pipeline.review import review_queue as review_queue
    from evalkit.pipeline.review_exchange import LabelStudioExport as LabelStudioExport
    from evalkit.pipeline.review_exchange import LabelStudioImport as LabelStudioImport
    from evalkit.pipeline.review_exchange import export_label_studio as export_label_studio
    from evalkit.pipeline.review_exchange import import_label_studio as import_label_studio
    from evalkit.pipeline.review_publish import MergedQuery as MergedQuery
    from evalkit.pipeline.review_publish import PublishOutcome as PublishOutcome
    from evalkit.pipeline.review_publish import ReviewerAgreement as ReviewerAgreement
    from evalkit.pipeline.review_publish import publish_goldset as publish_goldset
    from evalkit.pipeline.review_publish import reviewer_agreement as reviewer_agreement
    from evalkit.pipeline.runs import RunOutcome as RunOutcome
    from evalkit.pipeline.runs import canonical_measures as canonical_measures
    from evalkit.pipeline.runs import default_measures as default_measures
    from evalkit.pipeline.sweep import PointRerun as PointRerun
    from evalkit.pipeline.sweep import PointResult as PointResult
    from evalkit.pipeline.sweep import Sweep as Sweep
    from evalkit.pipeline.sweep import SweepOutcome as SweepOutcome
    from evalkit.pipeline.sweep import SweepPlan as SweepPlan
    from evalkit.pipeline.sweep import SweepPoint as SweepPoint
    from evalkit.pipeline.sweep import SweepProgress as SweepProgress
    from evalkit.pipeline.sweep import check_sweep as check_sweep
    from evalkit.pipeline.sweep import load_sweep as load_sweep
    from evalkit.pipeline.sweep import pareto_front as pareto_front
    from evalkit.pipeline.sweep import read_sweep_file as read_sweep_file
    from evalkit.pipeline.sweep import run_sweep as run_sweep
    from evalkit.pipeline.sweep import run_sweep_file as run_sweep_file
    from evalkit.pipeline.traffic import ReplaySetup as ReplaySetup
    from evalkit.pipeline.traffic import TrafficReplay as TrafficReplay
    from evalkit.pipeline.traffic import newest_sample as newest_sample
    from evalkit.pipeline.traffic import prepare_traffic_replay as prepare_traffic_replay
    from evalkit.pipeline.traffic import replay_traffic_window as replay_traffic_window
    from evalkit.pipeline.traffic_labels import WindowEstimate as WindowEstimate
    from evalkit.pipeline.traffic_labels import WindowJudging as WindowJudging
    from evalkit.pipeline.traffic_labels import calibration_key as calibration_key
    from evalkit.pipeline.traffic_labels import estimate_traffic_run as estimate_traffic_run
    from evalkit.pipeline.traffic_labels import judge_traffic_run as judge_traffic_run
    from evalkit.records.requests import GatePolicy as GatePolicy
    from evalkit.records.requests import TrafficReplayRequest as TrafficReplayRequest
else:
    # Importing the package loads none of its modules (nor the scipy, pandas or HTTP clients
    # they import); each name loads its own module on first use.
    __getattr__ = lazy_attributes(__name__)
