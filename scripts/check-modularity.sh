#!/bin/sh
# Builds the package, tests included, without one optional subsystem: a copy of
# the tree with NAME removed from Package.swift's `optionalSubsystems` and its
# directories (Sources/Subsystems/NAME, Tests/NAMETests) deleted. It proves that
# nothing outside the agent's registration (Sources/Agent/Subsystems.swift)
# depends on that subsystem.
#   scripts/check-modularity.sh Policy       one subsystem
#   scripts/check-modularity.sh --all        each optional subsystem in turn
#   scripts/check-modularity.sh --rotate     the one for today (CI: a different one each day)
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
all=$(sed -n 's/^let optionalSubsystems = \[\(.*\)\]$/\1/p' Package.swift | tr -d '",')
[ -n "$all" ] || { echo "check-modularity: no 'let optionalSubsystems = [...]' line in Package.swift" >&2; exit 2; }

check() {
    name=$1
    case " $all " in *" $name "*) ;; *)
        echo "check-modularity: '$name' is not an optional subsystem; choose one of: $all" >&2; exit 2 ;;
    esac
    # A stable place per subsystem, so that a second run builds incrementally.
    work=".build/modularity/$name"
    tree="$work/tree"
    rm -rf "$tree" && mkdir -p "$tree"
    # Tracked and untracked-but-not-ignored files as they are in the work tree (mtimes kept,
    # so a second run rebuilds only what changed).
    git ls-files -z --cached --others --exclude-standard \
        | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$tree"
    rm -rf "$tree/Sources/Subsystems/$name" "$tree/Tests/${name}Tests"
    sed -i "/^let optionalSubsystems = /{s/\"$name\", //; s/, \"$name\"\]/]/; s/\[\"$name\"\]/[]/}" "$tree/Package.swift"
    if grep -q "\"$name\"" "$tree/Package.swift" && ! grep -q "present(.*\"$name\"\|tests(of: \"$name\"" "$tree/Package.swift"; then
        echo "check-modularity: Package.swift names $name outside optionalSubsystems/present()/tests(of:):" >&2
        grep -n "\"$name\"" "$tree/Package.swift" >&2
        exit 1
    fi
    echo "check-modularity: building without $name"
    if swift build --build-tests --package-path "$tree" --scratch-path "$work/build" 2>&1 | tail -n 30 >"$work/log"; then
        :
    fi
    if grep -q "Build complete" "$work/log"; then
        echo "check-modularity: without $name: builds"
    else
        cat "$work/log" >&2
        echo "check-modularity: without $name: the rest does not build (above)" >&2
        exit 1
    fi
}

case "${1:-}" in
    --all) for n in $all; do check "$n"; done ;;
    --rotate)
        set -- $all
        i=$(( $(date +%j | sed 's/^0*//') % $# + 1 ))
        eval "check \${$i}" ;;
    ""|-h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    *) check "$1" ;;
esac
