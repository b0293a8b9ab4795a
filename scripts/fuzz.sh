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
  echo "== cargo install cargo-fuzz $CARGO_FUZZ_VERSION (into $TOOLS)"
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
targets=$(cargo fuzz list)
echo "== cargo fuzz build ${BUILD[*]}"
cargo fuzz build "${BUILD[@]}"
for target in $targets; do
  echo "== cargo fuzz run $target (${SECONDS_EACH}s)"
  # -timeout: a single input running this long is a finding (a hang), not a slow machine.
  cargo fuzz run "${BUILD[@]}" "$target" -- -max_total_time="$SECONDS_EACH" -timeout=10
done
echo "== fuzz: every target ran ${SECONDS_EACH}s without a finding"
