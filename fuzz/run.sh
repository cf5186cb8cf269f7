#!/usr/bin/env bash
# Runs the fuzz targets under libFuzzer for SECONDS each: every target, or the one named.
#
#   fuzz/run.sh SECONDS [TARGET]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On the stable toolchain only `--sanitizer none`
# works; with a nightly toolchain drop `-s none` to get AddressSanitizer too. The committed seeds in
# fuzz/corpus/TARGET are read; what the fuzzer finds on top goes to fuzz/target/corpus/TARGET (kept
# between runs, never committed), a crash to fuzz/artifacts/TARGET/. Each target's last line
# ("Done N runs in S second(s)") says how many inputs it ran.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 SECONDS [TARGET]" >&2
    exit 2
fi
seconds=$1
cd "$(dirname "$0")"
if [[ $# -eq 2 ]]; then
    targets=("$2")
else
    mapfile -t targets < <(cargo fuzz list)
fi
for target in "${targets[@]}"; do
    mkdir -p "target/corpus/$target"
    echo "== $target: $seconds s"
    cargo fuzz run -s none "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
