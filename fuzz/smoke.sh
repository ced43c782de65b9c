#!/usr/bin/env bash
# CI smoke run of the fuzz targets (docs/fuzzing.md): builds every target with
# libFuzzer on the stable toolchain and runs each for a short fixed time on its
# seeds, so the targets cannot rot. Fails on any crash, leak-free timeout or
# build error. Installs cargo-fuzz from crates.io if it is missing.
#   FUZZ_SMOKE_SECS   seconds per target (default 10)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
secs="${FUZZ_SMOKE_SECS:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Z...); the stable toolchain takes them
# with RUSTC_BOOTSTRAP=1. No sanitizer: stable ships no ASan runtime for Rust,
# and the code under test has no unsafe code (clippy denies it).
export RUSTC_BOOTSTRAP=1
fuzz() { cargo fuzz "$1" --sanitizer none --release --debug-assertions "${@:2}"; }

start=$SECONDS
fuzz build
echo "fuzz smoke: built all targets in $((SECONDS - start)) s"

for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [[ -f "dict/$target.dict" ]]; then
        args+=(-dict="dict/$target.dict")
    fi
    seeds=()
    if [[ -d "seeds/$target" ]]; then
        seeds=("seeds/$target")
    fi
    echo "fuzz smoke: $target for ${secs} s"
    log="corpus/$target.log"
    if ! fuzz run "$target" "corpus/$target" "${seeds[@]}" -- "${args[@]}" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz smoke: $target FAILED (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$log" || true
done
echo "fuzz smoke: all targets ran clean in $((SECONDS - start)) s"
