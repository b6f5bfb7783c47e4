#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make faults: the kselftests and bus_faults on the debug kernel with
# allocation failures injected into the test processes, in two passes
# in one guest:
#
#   module    failslab + fail_page_alloc, only allocations made with
#             af_bus.ko's text on the stack
#   anywhere  failslab + fail_page_alloc + fail_usercopy, any allocation
#             or user copy of the test processes (vmalloc excepted)
#
# Tests are expected to fail under injection.  The run passes when the
# kernel stays clean (no splat, no kmemleak report, af_bus unloads, no
# hang: scripts/vm.sh checks all of that) and bus_faults saw only clean
# errnos and no lost or half-applied operation.
#
#   scripts/faults.sh [--quick] [--iterations N] [--seed S]
#                     [--probability P] [--tests "bus_unicast bus_grants"]
#                     [--sweep N] [--vars build/debug/vars]   (skip the build)
#
# --sweep N: after the random module pass, bus_faults -n fails the k-th
# call of each operation in iteration k, for k = 1..N (fail-nth).
#
# --quick is the short variant make check runs (about a minute).

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"
BUILD=${BUILD:-$top/build}
iters=200 seed=$(date +%s) prob=10 tests= tlimit=90 quick=0 vars= sweep=40
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1; shift ;;
	--iterations) iters=$2; shift 2 ;;
	--sweep) sweep=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--probability) prob=$2; shift 2 ;;
	--tests) tests=$2; shift 2 ;;
	--vars) vars=$2; shift 2 ;;
	*) echo "faults.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

[ -n "$vars" ] || vars=$("$top/scripts/build.sh" debug | tail -n 1)
. "$vars"
out=$BUILD/debug
mkdir -p "$out/faults"
gcc -static -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -I "$top/include/uapi" \
	-o "$out/faults/bus_faults" "$top/tests/faults/bus_faults.c"

if [ $quick -eq 1 ]; then
	iters=30 tlimit=30 sweep=12
	[ -n "$tests" ] || tests="bus_grants"
fi
if [ -z "$tests" ]; then
	for t in "$TESTS"/*; do
		tests+=" $(basename "$t")"
	done
fi
anyiters=$((iters / 2))
adds=(--add "$top/scripts/guest-faults.sh:/usr/bin/" --add "$out/faults/bus_faults:/usr/bin/")
for t in $tests; do
	adds+=(--add "$TESTS/$t:/usr/libexec/af_bus/tests/")
done
for e in "$EXAMPLES"/*; do
	adds+=(--add "$e:/usr/bin/")
done

start=$(date +%s)
mkdir -p "$out/faults/log"
set +e
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout 3000 --log "$out/faults/log" \
	"${adds[@]}" -- sh -c "sh /usr/bin/guest-faults.sh module $prob $iters $seed $tlimit $sweep $tests; a=\$?
		sh /usr/bin/guest-faults.sh anywhere $((prob / 2 > 0 ? prob / 2 : 1)) $anyiters $seed $tlimit 0 $tests
		exit \$((a | \$?))" >"$out/faults/run.log" 2>&1
rc=$?
set -e
grep -a '^# \|^FAULTS-RESULT' "$out/faults/run.log" || true
if [ $rc -ne 0 ]; then
	grep -av '^# \|^FAULTS-RESULT\|^ok \|^not ok \|^  *#' "$out/faults/run.log" | tail -n 60
fi
# kmemleak must have stayed on for its verdict to mean anything.
if grep -aq 'kmemleak.*disabled\|Kernel memory leak detector disabled' "$out/faults/log/console.log"; then
	echo "faults: kmemleak disabled itself during the run"
	rc=1
fi
results=$(grep -ac '^FAULTS-RESULT' "$out/faults/log/output.log" || true)
[ "$results" -eq 2 ] || rc=1
injected=$(grep -a '^FAULTS-RESULT' "$out/faults/log/output.log" |
	sed 's/.*injected=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }')
echo "faults: seed $seed, $iters + $anyiters bus_faults iterations, a sweep of $sweep, tests:$tests"
echo "faults: $injected failures injected in $(($(date +%s) - start)) s (boot included); " \
	"$([ $rc -eq 0 ] && echo 'no splat, no leak, clean errnos' || echo FAILED)"
exit $rc
