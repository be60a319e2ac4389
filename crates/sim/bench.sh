#!/usr/bin/env bash
# Times whole replays of 18 November (11:00-17:30) with the release binary: every mode at
# 330 x 4, then 330 x 50. Bounded: each replay runs once per repetition (REPS, default 3);
# hyperfine is used when installed, else bash's `time`.
#
#   crates/sim/bench.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS="${REPS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p rampart-cli >/dev/null
BIN="$CARGO_TARGET_DIR/release/rampart"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
run() {
    local label="$1"; shift
    if command -v hyperfine >/dev/null; then
        hyperfine --runs "$REPS" --export-markdown "$OUT/$label.md" "$BIN replay nov18 -q --out $OUT/$label $*" >/dev/null
        tail -n 1 "$OUT/$label.md"
    else
        for _ in $(seq "$REPS"); do
            /usr/bin/env bash -c "TIMEFORMAT='$label %R s'; time $BIN replay nov18 -q --out $OUT/$label $* >/dev/null"
        done
    fi
}
for mode in naive rampart ablation; do
    run "330x4-$mode" --mode "$mode"
done
for mode in naive rampart ablation; do
    run "330x50-$mode" --mode "$mode" --nodes-per-pop 50
done
