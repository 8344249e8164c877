"""Relevance labels beyond a goldset's human judgments: an LLM assessor (``assessor``), its
agreement with human judgments (``agreement``) and a label-free estimate from calibrated
retriever scores (``estimate``).

Labels from an assessor or an estimate are never mixed with human judgments: every figure
computed from them carries its source. docs/judging.md.
"""
