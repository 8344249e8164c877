# shellcheck shell=bash
# Helpers the evalkit action's scripts source: GitHub's file commands and evalkit itself.
# Outside GitHub (tests, a laptop) GITHUB_OUTPUT and GITHUB_STEP_SUMMARY may be unset: the
# outputs then go nowhere and the summary to standard output.

EVALKIT_PYTHON="${EVALKIT_PYTHON:-python3}"

evalkit() {
  "$EVALKIT_PYTHON" -m evalkit "$@"
}

# set_output NAME VALUE: one step output (values are single lines: paths, ids, words).
set_output() {
  if [[ "$2" == *$'\n'* ]]; then
    echo "::error::output $1 would span lines: $2" >&2
    return 2
  fi
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
  fi
}

# annotate LEVEL MESSAGE: a ::notice::, ::warning:: or ::error:: line, escaped as the
# runner expects so a message with % or newlines arrives whole.
annotate() {
  local message="$2"
  message="${message//'%'/%25}"
  message="${message//$'\r'/%0D}"
  message="${message//$'\n'/%0A}"
  printf '::%s::%s\n' "$1" "$message"
}

# summarize FILE: append a Markdown file to the job summary.
summarize() {
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
    cat "$1" >>"$GITHUB_STEP_SUMMARY"
  else
    cat "$1"
  fi
}

# fail CODE MESSAGE: an ::error:: annotation, then exit with CODE.
fail() {
  annotate error "$2"
  exit "$1"
}

# json_field FILE KEY...: the value at that path in a JSON file ("" when absent or null).
json_field() {
  "$EVALKIT_PYTHON" - "$@" <<'PY'
import json
import sys

value = json.load(open(sys.argv[1], encoding="utf-8"))
for key in sys.argv[2:]:
    value = value.get(key) if isinstance(value, dict) else None
print("" if value is None else value)
PY
}

# words TEXT: the items of a list input, split on commas, spaces and newlines, one a line.
words() {
  tr ',[:space:]' '\n' <<<"$1" | sed '/^$/d'
}
