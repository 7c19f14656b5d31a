#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time.
#
#   fuzz/run.sh BINARY SECONDS ARTIFACT_DIR [CORPUS_DIR]
#
# BINARY is build/fuzz/fuzz_<target>. Its committed seeds (fuzz/corpus/<target>/)
# are read, never written; new inputs go to CORPUS_DIR, or to a temporary
# directory removed afterwards when none is given (as under ctest), so the tree
# stays clean. fuzz/<target>.dict is used when it exists. A crash, sanitizer
# report, failed invariant, leak, timeout (-timeout=10 s per input) or memory
# blow-up (over 2 GiB) saves the input in ARTIFACT_DIR and fails the run.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
binary=$1 seconds=$2 artifacts=$3 corpus=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
target=$(basename "$binary")
target=${target#fuzz_}
seeds="$here/corpus/$target"
[ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; exit 2; }

cleanup=
if [ -z "$corpus" ]; then
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/streamgrid-fuzz-$target.XXXXXX")
  cleanup=$corpus
fi
trap '[ -z "$cleanup" ] || rm -rf "$cleanup"' EXIT
mkdir -p "$corpus" "$artifacts"

args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
  -artifact_prefix="$artifacts/")
[ -f "$here/$target.dict" ] && args+=(-dict="$here/$target.dict")

echo "fuzzing $target for $seconds s (corpus $corpus, seeds $seeds)"
status=0
"$binary" "${args[@]}" "$corpus" "$seeds" || status=$?
if [ $status -ne 0 ]; then
  echo "fuzz target $target FAILED (exit $status); inputs saved in $artifacts:" >&2
  ls -1 "$artifacts" >&2 || true
  echo "reproduce with: $binary $artifacts/<file>" >&2
  exit 1
fi
