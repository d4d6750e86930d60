#!/bin/sh
# Benchmarks (not tests): release build, then the figures with their targets.
# Output is also saved to bench/results/DATE.txt.
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
# Self-contained binaries (Swift runtime linked in), as one would deploy them.
swift build -c release --static-swift-stdlib
mkdir -p bench/results
out=bench/results/$(date -u +%Y-%m-%d).txt
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) cores; scripts/bench.sh"
    .build/release/cilium-bench "$@"
} | tee "$out"
