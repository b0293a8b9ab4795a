#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a short, bounded time (FUZZ_SECONDS, default 20 each): the
# smoke run CI does after the tests. Long runs are described in the README ("Fuzzing").
#
# Needs only the stable toolchain: cargo-fuzz passes nightly-only flags to rustc, which stable accepts
# with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed from crates.io into .cargo-tools/ (gitignored),
# once, so nothing is cached outside the clone. libFuzzer is compiled from source by libfuzzer-sys, which
# needs a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH=${FUZZ_SECONDS:-20}
TOOLS="$PWD/.cargo-tools"

if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "== [$(date +%T)] cargo install cargo-fuzz $CARGO_FUZZ_VERSION (into $TOOLS)"
  # --debug: a third less to compile, and cargo-fuzz only drives cargo, so its own speed is moot.
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --debug --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH"
export RUSTC_BOOTSTRAP=1

# A smoke run: the development build (crypto optimised, see fuzz/Cargo.toml), which compiles in a
# fraction of the time of cargo-fuzz's release build, without AddressSanitizer (little to find in safe
# Rust). Debug assertions and overflow checks stay on. The long runs in the README use cargo-fuzz's
# defaults (release + ASan).
BUILD=(--dev --sanitizer none)
cd fuzz
# On its own line: a failing `cargo fuzz list` stops the script here (set -e), and an empty list is
# an error, not "every target ran".
targets=$(cargo fuzz list)
if [ -z "$targets" ]; then
  echo "scripts/fuzz.sh: cargo fuzz list found no targets in fuzz/" >&2
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
echo "== [$(date +%T)] cargo fuzz build ${BUILD[*]}"
cargo fuzz build "${BUILD[@]}"
# libFuzzer writes what it finds into the first corpus directory and only reads the others: a
# scratch directory first, so a run never writes into the committed corpus.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
  echo "== [$(date +%T)] cargo fuzz run $target (${SECONDS_EACH}s, from $(ls "corpus/$target" | wc -l) seeds)"
  mkdir "$scratch/$target"
  # -timeout: a single input running this long is a finding (a hang), not a slow machine.
  cargo fuzz run "${BUILD[@]}" "$target" "$scratch/$target" "$PWD/corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10
done
echo "== [$(date +%T)] fuzz: every target ($(echo $targets | wc -w)) ran ${SECONDS_EACH}s from its seeds without a finding"
