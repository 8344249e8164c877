"""Relevance labels beyond a goldset's human judgments.

* **An assessor** (``evalkit.judging.assessor``): graded relevance 0-3 of a document to a
  query, by an LLM through the ``[judge]`` OpenAI-compatible endpoint, on a four-grade scale
  (0 unrelated, 1 related, 2 highly relevant, 3 perfectly relevant), identified by the model
  and a hash of its prompt.
* **Agreement** (``evalkit.judging.agreement``): how far an assessor's labels can be trusted,
  measured against human judgments: weighted Cohen's kappa per pair, Kendall's tau between
  rankings of runs.
* **A label-free estimate** (``evalkit.judging.estimate``): the retriever's own scores
  calibrated to P(relevant) on goldset runs, giving an expected precision@k for traffic that
  nobody labelled.

Labels from an assessor or an estimate are never mixed with human judgments: every figure
computed from them carries its source.
"""
