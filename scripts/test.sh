#!/bin/sh
# The whole test suite, on a fresh Debian 12 machine, as root:
# installs what is missing, builds, prepares the systemd rootfs for the
# service tests, and runs every test (unit, BPF_PROG_TEST_RUN, namespaces,
# sandbox end to end, systemd).
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
CILIUM_SYSTEMD_ROOTFS=$(scripts/systemd-rootfs.sh)
export CILIUM_SYSTEMD_ROOTFS
swift build --build-tests
# One test at a time: end-to-end tests block threads of the 2-core machine's
# small concurrency pool (processes, sleeps) and would starve the timing of
# others. The whole suite takes about 1.5 minutes this way.
swift test --skip-build --no-parallel "$@"
