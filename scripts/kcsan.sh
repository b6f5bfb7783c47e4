#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make kcsan: the data-race detector's run.  Builds (or finds) the KCSAN
# kernel (configs/kcsan.config) and af_bus.ko against it, then boots two
# guests: every kselftest, then the short stress and fuzz profile that
# make check runs (a fixed seed).  Fails when a guest run fails (a test,
# an invariant, a splat: scripts/vm.sh) and on any KCSAN report
# ("BUG: KCSAN:") in either kernel log.  Prints a summary, then each
# distinct report, marked "af_bus" when a stack in it is the module's.
#
#   STRESS_SEED=N   seed of the stress profile (default 1, as make check)
#   ATTACKS=LIST    bus_stress's attack rounds (scripts/guest-stress.sh):
#                   all (default), a subset of peek,bind,stall,revoke, or
#                   none (then bus_fuzz -x too)
#   TIMEOUT=S       limit of the kselftest guest (default 1500)
#
# KCSAN instruments C only: the module's Rust code is not instrumented, so
# a race shows when at least one side is C (the socket core, skb, VFS and
# the C helpers the Rust bindings call); a Rust write racing with a C
# read is reported as a race of unknown origin.  Logs in build/kcsan/.

set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"
BUILD=${BUILD:-$top/build}
seed=${STRESS_SEED:-1}
attacks=${ATTACKS:-all}
out=$BUILD/kcsan

echo "== kcsan: build (KCSAN kernel, af_bus.ko, tests)"
vars=$("$top/scripts/build.sh" kcsan | tail -n 1) || { echo "kcsan: build failed"; exit 1; }
. "$vars"
rm -rf "$out/kcsan-log"
mkdir -p "$out/kcsan-log"

# The detector's counters at the end of a guest run (debugfs).
stats='echo "# kcsan: $(grep -E "^(enabled|setup_watchpoints|data_races|races_unknown_origin):" /sys/kernel/debug/kcsan 2>/dev/null | tr "\n" " ")"'
show='^(not )?ok [0-9]+ |^# af_bus: |^# kcsan: |^# Totals|^bus_(stress|fuzz): |^vm: |FAIL'

echo "== kcsan: guest 1: every kselftest"
adds=(--add "$top/scripts/guest-tests.sh:/usr/bin/" --add "$BUSCTL")
for t in "$TESTS"/*; do
	adds+=(--add "$t:/usr/libexec/af_bus/tests/")
done
for e in "$EXAMPLES"/*; do
	adds+=(--add "$e:/usr/bin/")
done
start=$(date +%s)
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout "${TIMEOUT:-1500}" \
	--log "$out/kcsan-log/tests" "${adds[@]}" \
	-- sh -c "sh /usr/bin/guest-tests.sh; rc=\$?; $stats; exit \$rc" \
	>"$out/kcsan-log/tests.run" 2>&1
tests_rc=$?
grep -aE "$show" "$out/kcsan-log/tests.run" | grep -avE '^ok [0-9]+ ' || true
tests_s=$(( $(date +%s) - start ))

echo "== kcsan: guest 2: short stress and fuzz profile (seed $seed, attacks: $attacks)"
start=$(date +%s)
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout 900 \
	--log "$out/kcsan-log/stress" \
	--add "$STRESS/bus_stress" --add "$FUZZ/bus_fuzz" \
	--add "$top/scripts/guest-stress.sh:/usr/bin/" \
	-- sh -c "sh /usr/bin/guest-stress.sh $seed 25 15 4 3 $attacks; rc=\$?; $stats; exit \$rc" \
	>"$out/kcsan-log/stress.run" 2>&1
stress_rc=$?
grep -aE "$show" "$out/kcsan-log/stress.run" || true
stress_s=$(( $(date +%s) - start ))

# Each report, from its "BUG: KCSAN:" line to the closing rule, without
# the printk timestamps, followed by a line "%%".
reports() {
	sed -E 's/^\[ *[0-9]+\.[0-9]+\] //' "$1" | tr -d '\r' | awk '
		/BUG: KCSAN:/ { on = 1 }
		on && /^=+$/ { on = 0; print "%%"; next }
		on { print }
		END { if (on) print "%%" }'
}
all=$out/kcsan-log/reports.txt
: >"$all"
for g in tests stress; do
	[ -f "$out/kcsan-log/$g/console.log" ] || continue
	reports "$out/kcsan-log/$g/console.log" | sed "s/^BUG: KCSAN:/BUG: KCSAN: [$g]/" >>"$all"
done
total=$(grep -c '^BUG: KCSAN:' "$all")
distinct=$(grep '^BUG: KCSAN:' "$all" | sed 's/^BUG: KCSAN: \[[a-z]*\] //' | sort -u | wc -l)
# A report is the module's when a stack frame in it is af_bus's.
ours=$(awk -v RS='%%\n' '/BUG: KCSAN:/ && /\[af_bus\]|af_bus::|6af_bus/' "$all" | grep -c '^BUG: KCSAN:')

result() {
	local rc=$1 log=$2
	[ "$rc" -eq 0 ] && { echo "passed"; return; }
	echo "FAILED (exit $rc; $(grep -aE '^vm: |FAIL' "$log" | head -n 1))"
}
passed=$(grep -acE '^ok [0-9]+ ' "$out/kcsan-log/tests/output.log" 2>/dev/null)
failed=$(grep -acE '^not ok [0-9]+ ' "$out/kcsan-log/tests/output.log" 2>/dev/null)
echo
echo "== kcsan: summary"
echo "kernel:      $KDIR"
echo "kselftests:  $(result $tests_rc "$out/kcsan-log/tests.run") in ${tests_s}s: $passed ok, $failed not ok"
echo "stress/fuzz: $(result $stress_rc "$out/kcsan-log/stress.run") in ${stress_s}s (seed $seed)"
grep -ah '^# kcsan: ' "$out/kcsan-log/tests.run" "$out/kcsan-log/stress.run" | sed 's/^# kcsan: /detector:    /'
grep -ah 'kcsan: selftest' "$out/kcsan-log/tests/console.log" 2>/dev/null | head -n 1 |
	sed -E 's/^\[ *[0-9]+\.[0-9]+\] //; s/^/self-test:   /'
echo "reports:     $total KCSAN report(s), $distinct distinct, $ours with an af_bus frame"
# Other splats (vm.sh fails the run on them too): the first lines.
for g in tests stress; do
	sed -E 's/^\[ *[0-9]+\.[0-9]+\] //' "$out/kcsan-log/$g/console.log" 2>/dev/null |
		grep -aE 'BUG:|WARNING:|Oops|Kernel panic|kernel BUG at|blocked for more than|general protection|possible (circular|recursive) locking|unreferenced object|panicked at' |
		grep -av 'BUG: KCSAN:' | sort -u | head -n 5 | sed "s/^/$g kernel:  /"
done
echo "logs:        $out/kcsan-log (reports.txt, tests/, stress/)"
if [ "$total" -gt 0 ]; then
	echo
	echo "== kcsan: the reports (each distinct one once)"
	awk -v RS='%%\n' -v ORS='\n' '
		/BUG: KCSAN:/ {
			t = $0; sub(/\n.*/, "", t); sub(/\[[a-z]*\] /, "", t)
			if (seen[t]++) next
			mark = ($0 ~ /\[af_bus\]|af_bus::|6af_bus/) ? "af_bus" : "elsewhere"
			print "-- (" mark ")\n" $0
		}' "$all"
fi
if [ "$total" -gt 0 ] || [ "$tests_rc" -ne 0 ] || [ "$stress_rc" -ne 0 ]; then
	echo "kcsan: FAILED"
	exit 1
fi
echo "kcsan: clean"
