#!/usr/bin/env bash
# Decide what this run does and where its files go, as step outputs:
#
#   mode            store (a push to the baseline branch: evaluate it and keep the run as the
#                   baseline) or gate (anything else: replay this revision's retriever and
#                   compare it with the newest stored baseline)
#   goldset-name    the name the goldset is stored under (default: its folder's or file's name)
#   key             actions/cache key of this revision's baseline: evalkit-baseline-NAME-SHA
#   restore-key     the prefix a gate restores the newest baseline by: evalkit-baseline-NAME-
#   first-run-key   where a gate with no baseline keeps its run: evalkit-first-run-NAME-SHA
#   first-run-restore-key  the prefix a gate restores its branch's first run by, when there
#                   is no baseline: evalkit-first-run-NAME- (a key that never matches
#                   restore-key, so a branch's first run never hides the baseline's)
#   cache-path      where the baseline files live (~/.cache/evalkit/baselines/NAME)
#   baseline-branch the branch whose pushes store baselines
#   report-dir      where the JUnit, Markdown and JSON reports are written
#
# Environment: INPUT_GOLDSET, INPUT_GOLDSET_NAME, INPUT_BASELINE_NAME, INPUT_BASELINE_BRANCH,
# INPUT_MODE (auto, store, gate), INPUT_REPORT_DIR, DEFAULT_BRANCH and GitHub's
# GITHUB_EVENT_NAME, GITHUB_REF_NAME, GITHUB_SHA, RUNNER_TEMP.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

goldset="${INPUT_GOLDSET:-}"
[[ -n "$goldset" ]] || fail 2 "the goldset input is required: the path of your goldset in the repository"
[[ -e "$goldset" ]] || fail 2 "goldset $goldset does not exist in $(pwd); give its path relative to the working-directory input"

goldset_name="${INPUT_GOLDSET_NAME:-}"
if [[ -z "$goldset_name" && -d "$goldset" ]]; then
  goldset_name="$(basename "$(cd "$goldset" && pwd)")"
elif [[ -z "$goldset_name" ]]; then
  goldset_name="$(basename "$goldset")"
  goldset_name="${goldset_name%.*}"
fi
# Cache keys are matched by prefix: only letters, digits, dots and underscores in a name, so
# that no baseline name is the prefix of another's key.
baseline_name="${INPUT_BASELINE_NAME:-$goldset_name}"
baseline_name="${baseline_name//[^A-Za-z0-9._]/_}"

branch="${INPUT_BASELINE_BRANCH:-${DEFAULT_BRANCH:-}}"
branch="${branch:-main}"
mode="${INPUT_MODE:-auto}"
case "$mode" in
  store | gate) ;;
  auto)
    mode=gate
    case "${GITHUB_EVENT_NAME:-}" in
      push | workflow_dispatch | schedule)
        [[ "${GITHUB_REF_NAME:-}" == "$branch" ]] && mode=store
        ;;
    esac
    ;;
  *) fail 2 "mode must be auto, store or gate, not '$mode'" ;;
esac

sha="${GITHUB_SHA:?GITHUB_SHA is not set}"
report_dir="${INPUT_REPORT_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/evalkit-gate/$baseline_name}"
mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"

set_output mode "$mode"
set_output goldset-name "$goldset_name"
set_output baseline-name "$baseline_name"
set_output key "evalkit-baseline-$baseline_name-$sha"
set_output restore-key "evalkit-baseline-$baseline_name-"
set_output first-run-key "evalkit-first-run-$baseline_name-$sha"
set_output first-run-restore-key "evalkit-first-run-$baseline_name-"
# Kept as ~/...: actions/cache expands it, and its key version hashes the path as written.
# shellcheck disable=SC2088
set_output cache-path "~/.cache/evalkit/baselines/$baseline_name"
set_output baseline-branch "$branch"
set_output report-dir "$report_dir"
echo "evalkit gate: mode $mode, goldset $goldset as '$goldset_name', baseline branch $branch"
