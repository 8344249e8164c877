#!/usr/bin/env bash
# Evaluate this revision's retriever on the goldset, then, by MODE:
#
#   store  keep the run as the baseline: exported into the baseline folder (which the next
#          step saves with actions/cache/save) as a run export (run/: `evalkit runs export
#          --format parquet`, the run with its provenance, so the gate can name probable
#          causes) and a TREC run file (baseline.run); a run with failed queries is refused
#          (exit 3) and the previous baseline stays in use
#   gate   with a restored baseline: `evalkit gate` against its run export (or, in a cache
#          an older version of this action wrote, its TREC file) (exit 0 pass, 1 regression,
#          4 inconclusive, or 0 with a warning when ON_INCONCLUSIVE is pass); with none:
#          the first run, kept in the baseline folder (which the next step saves with
#          actions/cache/save under FIRST_RUN_KEY, for later runs on this branch to be gated
#          against while the baseline branch has no baseline) and passed with a notice
#
# Bad input exits 2 and a retriever or store failure 3, each with an ::error:: saying what
# to do. The Markdown goes to the job summary; the step outputs are decision, run-id,
# junit, markdown, baseline-key, and baseline-ready or first-run-ready (a run to save).
#
# Environment: MODE, GOLDSET_NAME, CACHE_PATH, REPORT_DIR, KEY, FIRST_RUN_KEY,
# RESTORED_KEY, BASELINE_BRANCH (from the prepare step and the cache), INPUT_GOLDSET,
# INPUT_GOLDSET_FORMAT, INPUT_RETRIEVER, INPUT_COLLECTION, INPUT_HTTP_RETRIEVER,
# INPUT_CONFIG, INPUT_K, INPUT_MEASURES, INPUT_MIN_EFFECT, INPUT_ALPHA, INPUT_RESAMPLES,
# INPUT_ON_INCONCLUSIVE, GITHUB_SHA, GITHUB_HEAD_REF (a pull request's branch) and
# GITHUB_REF_NAME.
# The backquotes in printf formats are Markdown code spans, not expansions.
# shellcheck disable=SC2016
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

mode="${MODE:?MODE is not set: run prepare.sh first}"
goldset="${INPUT_GOLDSET:?INPUT_GOLDSET is not set}"
name="${GOLDSET_NAME:?GOLDSET_NAME is not set}"
reports="${REPORT_DIR:?REPORT_DIR is not set}"
cache_path="${CACHE_PATH:?CACHE_PATH is not set}"
baseline_dir="${cache_path/#\~/$HOME}"
branch="${BASELINE_BRANCH:-main}"
sha="${GITHUB_SHA:?GITHUB_SHA is not set}"
on_inconclusive="${INPUT_ON_INCONCLUSIVE:-fail}"
case "$on_inconclusive" in
  fail | pass) ;;
  *) fail 2 "on-inconclusive must be fail or pass, not '$on_inconclusive'" ;;
esac
mkdir -p "$reports"
summary="$reports/summary.md"
export ANONYMIZED_TELEMETRY="${ANONYMIZED_TELEMETRY:-False}"

if [[ -n "${INPUT_CONFIG:-}" ]]; then
  [[ -f "$INPUT_CONFIG" ]] || fail 2 "config file $INPUT_CONFIG does not exist in $(pwd)"
  EVALKIT_CONFIG="$(cd "$(dirname "$INPUT_CONFIG")" && pwd)/$(basename "$INPUT_CONFIG")"
  export EVALKIT_CONFIG
fi

# No retriever input: evalkit replays the [retriever] table of evalkit.toml.
retriever=()
[[ -n "${INPUT_RETRIEVER:-}" ]] && retriever+=(--retriever "$INPUT_RETRIEVER")
[[ -n "${INPUT_COLLECTION:-}" ]] && retriever+=(--collection "$INPUT_COLLECTION")
[[ -n "${INPUT_HTTP_RETRIEVER:-}" ]] && retriever+=(--http-retriever "$INPUT_HTTP_RETRIEVER")
depth=()
[[ -n "${INPUT_K:-}" ]] && depth+=(--k "$INPUT_K")

# run_json OUT ARGS...: evalkit ARGS with its JSON on OUT; $status is its exit code.
status=0
run_json() {
  local out="$1"
  shift
  status=0
  evalkit "$@" >"$out" || status=$?
}

# refuse OUT WHAT: say why evalkit failed (its JSON error), in the log and the summary, and
# exit with its code.
refuse() {
  local message
  message="$(json_field "$1" error message 2>/dev/null || true)"
  message="$2: ${message:-evalkit exited $status; its output above says why}"
  printf '### evalkit gate\n\n**evalkit failed** (exit %s): %s\n' "$status" "$message" >"$summary"
  summarize "$summary"
  fail "$status" "$message"
}

# aggregates RUN_JSON: a Markdown table of a stored run's figures.
aggregates() {
  "$EVALKIT_PYTHON" - "$1" <<'PY'
import json
import sys

run = json.load(open(sys.argv[1], encoding="utf-8"))
print("| measure | value |\n|---|---:|")
for measure, value in (run.get("aggregates") or {}).items():
    print(f"| {measure} | {'-' if value is None else f'{value:.4f}'} |")
PY
}

# replay WHAT: evaluate the goldset on the retriever into run.json and set $run_id; refuse
# a partial run.
run_id=""
replay() {
  run_json "$reports/run.json" run --goldset "$name" "${retriever[@]}" "${depth[@]}" \
    --no-answers --format json
  run_id="$(json_field "$reports/run.json" run_id 2>/dev/null || true)"
  if [[ "$status" == 3 && -n "$run_id" ]]; then
    fail 3 "$1 run $run_id is $(json_field "$reports/run.json" status) ($(json_field "$reports/run.json" error)). A gate needs every query answered; \`evalkit runs show $run_id --per-query\` lists the errors."
  elif [[ "$status" != 0 ]]; then
    refuse "$reports/run.json" "replaying $goldset failed"
  fi
}

run_json "$reports/goldset.json" goldset import "$goldset" --name "$name" \
  --format "${INPUT_GOLDSET_FORMAT:-jsonl}" -o json
[[ "$status" == 0 ]] || refuse "$reports/goldset.json" "importing goldset $goldset failed"
version="$(json_field "$reports/goldset.json" version)"

# keep KEY ORIGIN BRANCH: keep the replayed run $run_id in the baseline folder as a run
# export (run/, which `evalkit gate --baseline` imports with its provenance) and a TREC run
# file, with its facts (ORIGIN: baseline, or first-run of BRANCH) in baseline.json.
keep() {
  rm -rf "$baseline_dir"
  mkdir -p "$baseline_dir"
  evalkit runs export "$run_id" --format parquet --output "$baseline_dir/run"
  evalkit runs export "$run_id" --format trec --output "$baseline_dir/baseline.run"
  "$EVALKIT_PYTHON" - "$reports/run.json" "$baseline_dir/baseline.json" "$sha" "$3" \
    "$1" "$goldset" "$2" <<'PY'
import json
import sys

run_file, meta_file, sha, branch, key, goldset, origin = sys.argv[1:]
run = json.load(open(run_file, encoding="utf-8"))
meta = {
    "run": run, "commit": sha, "branch": branch, "key": key, "goldset": goldset,
    "origin": origin,
}
with open(meta_file, "w", encoding="utf-8") as handle:
    json.dump(meta, handle, indent=2)
PY
}

store_baseline() {
  replay "the baseline branch's"
  keep "$KEY" baseline "$branch"
  {
    printf '### evalkit baseline\n\n'
    printf 'Stored run `%s` of goldset `%s` (version %s, k %s) from `%s` at %s as the ' \
      "$run_id" "$name" "$version" "$(json_field "$reports/run.json" k)" "$branch" "${sha:0:12}"
    printf 'baseline `%s`; pull requests are gated against it.\n\n' "$KEY"
    aggregates "$reports/run.json"
  } >"$summary"
  summarize "$summary"
  set_output decision baseline-stored
  set_output run-id "$run_id"
  set_output markdown "$summary"
  set_output baseline-key "$KEY"
  set_output baseline-ready true
}

first_run() {
  local key="${FIRST_RUN_KEY:?FIRST_RUN_KEY is not set: run prepare.sh first}"
  local this_branch="${GITHUB_HEAD_REF:-${GITHUB_REF_NAME:-this branch}}"
  replay "the candidate"
  keep "$key" first-run "$this_branch"
  local message="first run: no baseline on $branch yet; the candidate was stored, the gate passes"
  annotate notice "$message (run $run_id, cached as $key: later runs on $this_branch are gated against it until a push to $branch that runs this action stores the baseline)"
  {
    printf '### evalkit gate\n\n**Gate: PASS (first run)** - no baseline on `%s` yet; ' "$branch"
    printf 'the candidate run `%s` of goldset `%s` was stored (cache `%s`) and the gate passes. ' \
      "$run_id" "$name" "$key"
    printf 'Later runs on `%s` are gated against it until a push to `%s` stores the baseline.\n\n' \
      "$this_branch" "$branch"
    aggregates "$reports/run.json"
  } >"$summary"
  summarize "$summary"
  set_output decision no-baseline
  set_output run-id "$run_id"
  set_output markdown "$summary"
  set_output baseline-key "$key"
  set_output first-run-ready true
}

gate() {
  local meta="$baseline_dir/baseline.json" stored_version against
  stored_version="$(json_field "$meta" run goldset_version)"
  against="the baseline of $branch"
  if [[ "$(json_field "$meta" origin)" == first-run ]]; then
    against="the first run on $(json_field "$meta" branch) (no baseline on $branch yet)"
    annotate notice "no baseline on $branch yet: gated against $against, run $(json_field "$meta" run run_id) at $(json_field "$meta" commit | cut -c1-12)"
  fi
  if [[ "$stored_version" != "$version"* && "$version" != "$stored_version"* ]]; then
    annotate warning "the goldset $goldset changed since the baseline was stored (version ${stored_version:0:12} there, ${version:0:12} here): both runs are scored on this revision's judgments; a query added since has no baseline results and one removed since has no candidate results: both are left out of the comparison (the summary lists them)"
  fi
  # A run export carries the baseline's provenance, so the gate names probable causes; a
  # cache an older version of this action wrote holds only the TREC run file.
  local baseline_run="$baseline_dir/run" causes_note=""
  if [[ ! -f "$baseline_run/run.json" ]]; then
    baseline_run="$baseline_dir/baseline.run"
    causes_note="Probable causes need the baseline's run export, which this cached baseline (a TREC run file stored by an older version of this action) lacks; the next push to \`$branch\` stores one."
  fi
  local measures=()
  while IFS= read -r measure; do
    measures+=(-m "$measure")
  done < <(words "${INPUT_MEASURES:-ndcg@10}")
  run_json "$reports/gate.json" gate --baseline "$baseline_run" --goldset "$name" \
    "${retriever[@]}" "${depth[@]}" "${measures[@]}" \
    --min-effect "${INPUT_MIN_EFFECT:-0.01}" --alpha "${INPUT_ALPHA:-0.05}" \
    --resamples "${INPUT_RESAMPLES:-10000}" \
    --junit "$reports/gate.xml" --markdown "$reports/gate.md" --format json
  case "$status" in
    0 | 1 | 4) ;;
    *) refuse "$reports/gate.json" "the gate could not compare the runs" ;;
  esac
  local gate_status="$status" decision candidate
  decision="$(json_field "$reports/gate.json" decision)"
  candidate="$(json_field "$reports/gate.json" candidate)"
  {
    cat "$reports/gate.md"
    printf '\nBaseline: run `%s` of `%s` at %s (cache `%s`). Candidate: run `%s`, this revision'"'"'s retriever.\n' \
      "$(json_field "$meta" run run_id)" "$(json_field "$meta" branch)" \
      "$(json_field "$meta" commit | cut -c1-12)" "${RESTORED_KEY:-$(json_field "$meta" key)}" \
      "$candidate"
    if [[ -n "$causes_note" && "$decision" != pass ]]; then
      printf '\n%s\n' "$causes_note"
    fi
  } >"$summary"
  summarize "$summary"
  set_output decision "$decision"
  set_output run-id "$candidate"
  set_output junit "$reports/gate.xml"
  set_output markdown "$summary"
  set_output baseline-key "${RESTORED_KEY:-$(json_field "$meta" key)}"
  local verdict
  verdict="$("$EVALKIT_PYTHON" - "$reports/gate.json" <<'PY'
import json
import sys


def number(value, spec, missing="n/a"):
    """VALUE formatted by SPEC; the JSON gives null for a bound that is infinite (one
    changed query leaves the interval unbounded), which the Markdown writes as -inf/+inf."""
    return missing if value is None else format(value, spec)


data = json.load(open(sys.argv[1], encoding="utf-8"))
print("; ".join(
    f"{measure} {m['decision']}: {number(m['baseline_mean'], '.4f')} -> "
    f"{number(m['candidate_mean'], '.4f')} (delta {number(m['delta'], '+.4f')}, "
    f"CI [{number(m['ci_low'], '+.4f', '-inf')}, {number(m['ci_high'], '+.4f', '+inf')}])"
    for measure, m in data["metrics"].items()
))
PY
)"
  case "$decision" in
    pass) echo "evalkit gate: pass - $verdict" ;;
    regression) fail "$gate_status" "retrieval regression against $against - $verdict" ;;
    inconclusive)
      if [[ "$on_inconclusive" == pass ]]; then
        annotate warning "the gate is inconclusive (passed, on-inconclusive: pass) - $verdict"
      else
        fail "$gate_status" "the gate is inconclusive: too few queries to rule out a drop larger than the minimum effect (on-inconclusive: pass turns this into a warning) - $verdict"
      fi
      ;;
    *) fail 3 "unexpected gate decision '$decision'" ;;
  esac
}

case "$mode" in
  store) store_baseline ;;
  gate)
    if [[ -f "$baseline_dir/baseline.run" && -f "$baseline_dir/baseline.json" ]]; then
      gate
    else
      first_run
    fi
    ;;
  *) fail 2 "mode must be store or gate, not '$mode'" ;;
esac
