#!/bin/sh
# Benchmarks (not tests): release build, then the figures with their targets.
#   scripts/bench.sh            the full run (about 10 minutes), saved to bench/results/DATE.txt
#   scripts/bench.sh --quick    every figure through the same code paths with small sizes and
#                               short samples (CI runs it after the tests); it fails when a
#                               figure is not produced, and its numbers are not figures
#   scripts/bench.sh --only pods|nodes|wireguard|scale|clustermesh|lb|policy|hubble|reconciler   one part
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
# Self-contained binaries (Swift runtime linked in), as one would deploy them.
swift build -c release --static-swift-stdlib
case " $* " in
    *" --quick "*|*" --only "*) exec .build/release/cilium-bench "$@" ;;
esac
mkdir -p bench/results
out=bench/results/$(date -u +%Y-%m-%d).txt
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) cores; scripts/bench.sh"
    .build/release/cilium-bench "$@"
} | tee "$out"
