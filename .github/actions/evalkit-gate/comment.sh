#!/usr/bin/env bash
# Post the gate's Markdown as a pull-request comment, or update the comment an earlier run
# of this action left for the same baseline name, through GitHub's REST API.
#
# Needs a token that may write pull requests (`permissions: pull-requests: write`); a
# pull request from a fork gets a read-only token, so there a refused comment is a warning,
# never a failed job: the verdict is the evaluate step's.
#
# Environment: MARKDOWN (the file to post), BASELINE_NAME, PR_NUMBER, INPUT_GITHUB_TOKEN,
# GITHUB_REPOSITORY, GITHUB_API_URL (default https://api.github.com).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

markdown="${MARKDOWN:?MARKDOWN is not set: nothing to post}"
pr="${PR_NUMBER:-}"
if [[ -z "$pr" ]]; then
  annotate notice "comment is on, but this run is not for a pull request: nothing to comment on"
  exit 0
fi
token="${INPUT_GITHUB_TOKEN:-}"
[[ -n "$token" ]] || fail 2 "comment is on but the github-token input is empty"
api="${GITHUB_API_URL:-https://api.github.com}"
repo="${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
marker="<!-- evalkit-gate: ${BASELINE_NAME:-default} -->"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The token goes to curl in a header file, never on its command line.
(
  umask 077
  printf 'Authorization: Bearer %s\n' "$token" >"$work/auth"
)
headers=(-H "@$work/auth" -H "Accept: application/vnd.github+json"
  -H "X-GitHub-Api-Version: 2022-11-28")

# call METHOD URL [BODY]: the response body in $work/response; prints the HTTP status.
call() {
  local data=()
  [[ $# -ge 3 ]] && data=(-H "Content-Type: application/json" --data-binary "@$3")
  # On a connection failure curl still writes 000 as the status.
  curl -sS -X "$1" "${headers[@]}" "${data[@]}" -o "$work/response" -w '%{http_code}' "$2" ||
    true
}

# The earlier comment carrying this action's marker, if any (100 comments a page).
existing=""
page=1
while [[ -z "$existing" ]]; do
  code="$(call GET "$api/repos/$repo/issues/$pr/comments?per_page=100&page=$page")"
  if [[ "$code" != 200 ]]; then
    annotate warning "could not list the comments of pull request #$pr (HTTP $code): $(head -c 300 "$work/response" 2>/dev/null || true)"
    exit 0
  fi
  read -r existing count < <("$EVALKIT_PYTHON" - "$work/response" "$marker" <<'PY'
import json
import sys

comments = json.load(open(sys.argv[1], encoding="utf-8"))
found = [c["id"] for c in comments if sys.argv[2] in (c.get("body") or "")]
print(found[0] if found else "-", len(comments))
PY
)
  [[ "$existing" == "-" ]] && existing=""
  ((count < 100)) && break
  page=$((page + 1))
done

"$EVALKIT_PYTHON" - "$markdown" "$marker" "$work/body.json" <<'PY'
import json
import sys

markdown, marker, out = sys.argv[1:]
text = open(markdown, encoding="utf-8").read()
with open(out, "w", encoding="utf-8") as handle:
    json.dump({"body": f"{marker}\n{text}"}, handle)
PY

if [[ -n "$existing" ]]; then
  code="$(call PATCH "$api/repos/$repo/issues/comments/$existing" "$work/body.json")"
  done_what="updated comment $existing on"
else
  code="$(call POST "$api/repos/$repo/issues/$pr/comments" "$work/body.json")"
  done_what="commented on"
fi
if [[ "$code" == 200 || "$code" == 201 ]]; then
  echo "evalkit gate: $done_what pull request #$pr"
else
  annotate warning "could not comment on pull request #$pr (HTTP $code): the workflow needs permissions: pull-requests: write, and a pull request from a fork gets a read-only token. $(head -c 300 "$work/response" 2>/dev/null || true)"
fi
