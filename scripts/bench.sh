#!/bin/sh
# Benchmarks (not tests): release build, then the figures with their targets.
# Output is also saved to bench/results/DATE.txt.
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
# Release binaries. Not --static-swift-stdlib for now: a statically linked
# agent built from this tree aborts at start ("malloc(): corrupted top size",
# inside the Swift runtime's first conformance lookup for StateTable<...>),
# while the same code linked dynamically (and every debug build) runs; see
# the stop 8 note. The figures below are for the dynamically linked build.
swift build -c release
mkdir -p bench/results
out=bench/results/$(date -u +%Y-%m-%d).txt
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) cores; scripts/bench.sh"
    .build/release/cilium-bench "$@"
} | tee "$out"
