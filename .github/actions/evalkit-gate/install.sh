#!/usr/bin/env bash
# Install evalkit with the extras the retriever needs, into the Python on PATH.
#
# From the action's own checkout by default (the action and the package always match, with
# the versions evalkit's test suite ran on from constraints.txt), or a published version
# from PyPI. Extras that embed text (embed, answers, all) pull torch: its CPU build is
# installed first, as a GitHub runner has no GPU and PyPI's default build brings several GB
# of CUDA libraries.
#
# Environment: EVALKIT_SOURCE (the action's checkout), INPUT_EXTRAS, INPUT_EVALKIT_VERSION,
# INPUT_CONSTRAINTS (true/false), INPUT_PIP_ARGS (more to install: your retriever's
# dependencies), EVALKIT_DRY_RUN=1 (print the pip commands instead of running them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

source_dir="${EVALKIT_SOURCE:-$(cd "$here/../../.." && pwd)}"
version="${INPUT_EVALKIT_VERSION:-}"
torch_index="https://download.pytorch.org/whl/cpu"

# The extras evalkit declares, read from its pyproject.toml (dev is the project's own).
mapfile -t known < <("$EVALKIT_PYTHON" - "$source_dir/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    extras = tomllib.load(handle)["project"]["optional-dependencies"]
print("\n".join(name for name in extras if name != "dev"))
PY
)
mapfile -t extras < <(words "${INPUT_EXTRAS:-}")
needs_torch=false
for extra in "${extras[@]}"; do
  found=false
  for name in "${known[@]}"; do
    [[ "$extra" == "$name" ]] && found=true
  done
  "$found" || fail 2 "unknown evalkit extra '$extra'; the extras are: ${known[*]}"
  case "$extra" in
    embed | answers | all) needs_torch=true ;;
  esac
done
extras_suffix=""
if ((${#extras[@]})); then
  extras_suffix="[$(IFS=,; echo "${extras[*]}")]"
fi

constraints=()
if [[ -z "$version" && "${INPUT_CONSTRAINTS:-true}" == "true" ]]; then
  constraints=(-c "$source_dir/constraints.txt")
fi
if [[ -n "$version" ]]; then
  case "$version" in
    [0-9]*) package="evalkit-retrieval${extras_suffix}==$version" ;;
    *) package="evalkit-retrieval${extras_suffix}$version" ;;  # a specifier: >=0.2,<0.3
  esac
else
  package="$source_dir$extras_suffix"
fi

# torch as evalkit's constraints pin it, else as its embed extra bounds it.
torch_spec="$("$EVALKIT_PYTHON" - "$source_dir" "${#constraints[@]}" <<'PY'
import re
import sys
import tomllib
from pathlib import Path

source, constrained = Path(sys.argv[1]), sys.argv[2] != "0"
if constrained:
    for line in (source / "constraints.txt").read_text().splitlines():
        if re.match(r"torch\s*==", line):
            print(line.strip())
            raise SystemExit
with open(source / "pyproject.toml", "rb") as handle:
    embed = tomllib.load(handle)["project"]["optional-dependencies"]["embed"]
print(next(spec for spec in embed if re.match(r"torch\b", spec)).split(";")[0].strip())
PY
)"

pip_args=()
if [[ -n "${INPUT_PIP_ARGS:-}" ]]; then
  read -r -a pip_args <<<"$INPUT_PIP_ARGS"
fi

pip() {
  if [[ "${EVALKIT_DRY_RUN:-}" == "1" ]]; then
    printf 'pip install'
    printf ' %q' "$@"
    printf '\n'
  else
    "$EVALKIT_PYTHON" -m pip install --disable-pip-version-check "$@"
  fi
}

if "$needs_torch"; then
  pip "$torch_spec" --index-url "$torch_index"
fi
pip "${constraints[@]}" "$package" "${pip_args[@]}"
if [[ "${EVALKIT_DRY_RUN:-}" != "1" ]]; then
  evalkit --version
fi
