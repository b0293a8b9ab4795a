#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a short, bounded time (FUZZ_SECONDS, default 20 each): the smoke
# run CI does after the tests. Long runs, with cargo-fuzz, are described in the README ("Fuzzing").
#
# Needs only the stable toolchain and a C++ compiler (libfuzzer-sys compiles libFuzzer from source).
# It builds the targets with plain `cargo build` and the instrumentation flags `cargo fuzz build --dev
# --sanitizer none` passes (cargo-fuzz 0.13, src/project.rs), so CI does not compile cargo-fuzz itself
# first: that took two to four minutes of every run, for a tool that only drives cargo.
#
# `scripts/fuzz.sh build` only builds (CI starts that early, in the background); without an argument it
# builds what is missing and runs every target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

MODE=${1:-run}
case "$MODE" in
  build | run) ;;
  *)
    echo "usage: scripts/fuzz.sh [build]" >&2
    exit 2
    ;;
esac

SECONDS_EACH=${FUZZ_SECONDS:-20}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')

# SanitizerCoverage feeding libFuzzer: edge counters, the PC table, comparison tracing (how libFuzzer
# learns the bytes a parser wants), stack depth; `--cfg fuzzing` as cargo-fuzz sets it. Debug
# assertions and overflow checks stay on (development profile); no AddressSanitizer, which finds
# little in safe Rust. `--target` keeps these flags off build scripts and proc macros, which are not
# linked with libFuzzer.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions"

# The targets are fuzz/Cargo.toml's binaries. On its own line: a failing `cargo metadata` stops the
# script here (set -e), and an empty list is an error, not "every target ran".
targets=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for package in json.load(sys.stdin)["packages"]:
    for target in package["targets"]:
        if "bin" in target["kind"]:
            print(target["name"])')
if [ -z "$targets" ]; then
  echo "scripts/fuzz.sh: fuzz/Cargo.toml declares no fuzz targets" >&2
  exit 1
fi
# Every target starts from its committed seeds (corpus/<target>/, written by examples/seed_corpus.rs;
# README "Fuzzing"): without them a short run barely gets past the parsers' first rejections.
for target in $targets; do
  if [ -z "$(ls -A "corpus/$target" 2>/dev/null)" ]; then
    echo "scripts/fuzz.sh: fuzz/corpus/$target/ holds no seeds; run \`cargo run --example seed_corpus\` in fuzz/ and commit them" >&2
    exit 1
  fi
done

echo "== [$(date +%T)] cargo build (fuzz targets, instrumented, $TRIPLE)"
cargo build --bins --target "$TRIPLE"
if [ "$MODE" = build ]; then
  exit 0
fi

# libFuzzer writes what it finds into the first corpus directory and only reads the others: a
# scratch directory first, so a run never writes into the committed corpus.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
  echo "== [$(date +%T)] fuzz $target (${SECONDS_EACH}s, from $(ls "corpus/$target" | wc -l) seeds)"
  mkdir "$scratch/$target"
  # -timeout: a single input running this long is a finding (a hang), not a slow machine. A finding
  # is saved under artifacts/<target>/, as cargo-fuzz would.
  mkdir -p "artifacts/$target"
  "target/$TRIPLE/debug/$target" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$SECONDS_EACH" -timeout=10 "$scratch/$target" "corpus/$target"
done
echo "== [$(date +%T)] fuzz: every target ($(echo $targets | wc -w)) ran ${SECONDS_EACH}s from its seeds without a finding"
