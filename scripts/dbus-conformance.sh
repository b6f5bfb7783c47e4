#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make dbus-conformance: Debian's D-Bus conformance tests (package
# dbus-tests: the libdbus test programs that take an existing bus from
# DBUS_TEST_DAEMON_ADDRESS) against dbus-daemon and, in the same boot,
# through the afbus-dbus bridge to a bus on AF_BUS.  Prints a table of
# passed / failed / skipped subtests per program and bus.  A report, not
# a gate: it exits non-zero only if the guest or a bus failed to start.
#
#   scripts/dbus-conformance.sh [FLAVOUR]     (default debug)

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
flavour=${1:-debug}
vars=$("$top/scripts/build.sh" "$flavour")
# shellcheck disable=SC1090 # written by build.sh
. "$vars"

dir=/usr/lib/dbus-1.0/installed-tests/dbus
# The programs that talk to a message bus (the rest test libdbus alone).
tests=(test-dbus-daemon test-dbus-daemon-eavesdrop test-fdpass test-header-fields
	test-monitor test-uid-permissions test-containers test-sd-activation)
# CONFORMANCE_TESTS="test-fdpass ..." runs some of them.
[ -z "${CONFORMANCE_TESTS:-}" ] || read -r -a tests <<<"$CONFORMANCE_TESTS"
daemon=$(command -v dbus-daemon)
adds=(--add "$top/scripts/dbus-conformance-guest.sh:/usr/bin/"
	--add "$top/tests/bench/dbus/bench-bus.conf:/usr/share/af_bus/"
	--add "$daemon" --add "$AFBUS_DBUS")
progs=("$daemon")
for t in "${tests[@]}"; do
	adds+=(--add "$dir/$t:$dir/$t")
	progs+=("$dir/$t")
done
mapfile -t libs < <("$top/scripts/guest-libs.sh" "${progs[@]}")
adds+=("${libs[@]}")

log=$(mktemp -d /tmp/dbus-conformance.XXXXXX)
trap 'rm -rf "$log"' EXIT
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout "${TIMEOUT:-1500}" \
	--log "$log/boot" "${adds[@]}" -- sh /usr/bin/dbus-conformance-guest.sh "${tests[@]}" |
	grep -av '^CONFORMANCE,' || true
grep -a '^CONFORMANCE,' "$log/boot/output.log" | tr -d '\r' >"$log/results.csv" || true
if [ ! -s "$log/results.csv" ]; then
	echo "dbus-conformance: no results (see the guest output above)" >&2
	exit 1
fi
python3 - "$log/results.csv" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    _, bus, test, ok, notok, skip, rc = line.strip().split(",")
    rows[(bus, test)] = (int(ok), int(notok), int(skip), int(rc))
tests = sorted({t for _, t in rows})
print("%-28s %-30s %-30s" % ("program", "dbus-daemon ok/fail/skip (exit)",
                             "AF_BUS bridge ok/fail/skip (exit)"))
tot = {"dbus-daemon": [0, 0, 0], "afbus-bridge": [0, 0, 0]}
for t in tests:
    cells = []
    for bus in ("dbus-daemon", "afbus-bridge"):
        r = rows.get((bus, t))
        if r is None:
            cells.append("-")
            continue
        for i in range(3):
            tot[bus][i] += r[i]
        # Skips are counted among the ok lines by TAP.
        cells.append("%d/%d/%d (%d)" % (r[0] - r[2], r[1], r[2], r[3]))
    print("%-28s %-30s %-30s" % (t, *cells))
print("%-28s %-30s %-30s" % ("total", *("%d/%d/%d" % (o - s, f, s) for o, f, s in
                                         (tot["dbus-daemon"], tot["afbus-bridge"]))))
PY
