#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make stress: bus_stress then bus_fuzz in one guest on the debug kernel.
#
#   SEED=N         seed of both (default: the current time, printed)
#   DURATION=S     seconds of stress (default 180); the fuzzer runs
#                  FUZZ_DURATION seconds (default DURATION / 2)
#   WORKERS=N      stress worker processes (default 4)
#   THREADS=N      fuzzer threads (default 3)
#   ATTACKS=LIST   bus_stress's attack rounds: peek,bind,stall,revoke (the
#                  default, all), a subset, or none (also bus_fuzz -x: no
#                  attack operations)
#
# Fails on any invariant the programs check, and on any kernel splat or
# kmemleak report (scripts/vm.sh).  Logs in build/<flavour>/stress-log.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
flavour=${1:-debug}
BUILD=${BUILD:-$top/build}
seed=${SEED:-$(date +%s)}
duration=${DURATION:-180}
fuzz=${FUZZ_DURATION:-$((duration / 2))}
workers=${WORKERS:-4}
threads=${THREADS:-3}
attacks=${ATTACKS:-all}

vars=$("$top/scripts/build.sh" "$flavour" | tail -n 1)
. "$vars"
echo "stress: seed=$seed stress=${duration}s fuzz=${fuzz}s on the $flavour kernel"
log=$BUILD/$flavour/stress-log
mkdir -p "$log"
start=$(date +%s)
rc=0
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" \
	--timeout $((duration * 3 + fuzz * 3 + 600)) --log "$log" \
	--add "$STRESS/bus_stress" --add "$FUZZ/bus_fuzz" \
	--add "$top/scripts/guest-stress.sh:/usr/bin/" \
	-- sh /usr/bin/guest-stress.sh "$seed" "$duration" "$fuzz" "$workers" "$threads" \
	"$attacks" || rc=$?
echo "stress: seed=$seed guest run of $(( $(date +%s) - start ))s, exit $rc (logs in $log)"
[ "$rc" -eq 0 ] || echo "stress: reproduce with: make stress SEED=$seed DURATION=$duration" \
	"${ATTACKS:+ATTACKS=$attacks}"
exit "$rc"
