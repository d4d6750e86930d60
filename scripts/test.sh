#!/bin/sh
# The whole test suite, on a fresh Debian 12 machine, as root:
# installs what is missing, builds, prepares the systemd rootfs for the
# service tests, and runs every test (unit, BPF_PROG_TEST_RUN, namespaces,
# sandbox end to end, systemd, and the second-kernel tier: SecondKernelTests
# boot Debian's 6.12 under qemu with scripts/kernel-vm and run there).
# Afterwards the machine must be as it was: the same sysctls, namespaces,
# bpffs entries, no sandbox or qemu left (scripts/host-state.sh); if not,
# the run fails and says what changed.
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
CILIUM_SYSTEMD_ROOTFS=$(scripts/systemd-rootfs.sh)
export CILIUM_SYSTEMD_ROOTFS
swift build --build-tests
# One test at a time: end-to-end tests block threads of the 2-core machine's
# small concurrency pool (processes, sleeps) and would starve the timing of
# others. The whole suite takes about 4 minutes this way.
before=$(mktemp); after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT
scripts/host-state.sh >"$before"
status=0
swift test --skip-build --no-parallel "$@" || status=$?
scripts/host-state.sh >"$after"
if ! cmp -s "$before" "$after"; then
    # Mount points are reported, not failed on: a first run on a machine may leave what the
    # system's own tools set up once (bpffs, /run/netns, podman's storage).
    if diff "$before" "$after" | grep '^[<>]' | grep -qv '^[<>] mounts:'; then
        echo "test.sh: the test run changed the machine (< before, > after):" >&2
        [ "$status" != 0 ] || status=1
    else
        echo "test.sh: note: mount points changed during the run (< before, > after):" >&2
    fi
    diff "$before" "$after" >&2 || true
fi
exit "$status"
