#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark suite in one guest boot: AF_BUS against AF_UNIX, a pipe
# pair and a real dbus-daemon (tests/bench/).  Writes a table, a CSV and
# a plot into bench-results/<UTC time>/ (BENCH_OUT moves it).
#
#   scripts/bench.sh [--smoke] [--vars FILE] [FLAVOUR]
#
# FLAVOUR is base (default: no debug options) or debug.  --smoke runs
# every program with tiny counts and keeps no results: it fails only if
# a benchmark program fails, never on a figure.  --vars reuses the
# output of scripts/build.sh.  REPS (7) and SCALE (1) set the
# repetitions after the warm-up and multiply the message counts; BENCH_GROUPS
# (e.g. "rtt tput") runs only those groups of tests/bench/bus_bench.c,
# BENCH_CASE (e.g. af_bus, unix_dgram) only that transport in them.
#
# PERF=1 profiles instead of measuring: each group runs under
# `perf record -a -g` (software cpu-clock sampling; TCG has no hardware
# counters) and the reports, kernel and user symbols together, go to
# bench-results/<UTC time>-perf/perf.txt, the folded stacks (the input
# of flamegraph.pl) to perf.folded there.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"

smoke=0 vars=
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) smoke=1; shift ;;
	--vars) vars=$2; shift 2 ;;
	-*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
flavour=${1:-base}
[ -n "$vars" ] || vars=$("$top/scripts/build.sh" "$flavour" | tail -n 1)
. "$vars"

if [ $smoke -eq 1 ]; then
	reps=1 scale=0.01
else
	reps=${REPS:-7} scale=${SCALE:-1}
fi

# The dbus-daemon peer is linked against libdbus (Debian ships no static
# libsystemd for it); it, the daemon and their libraries go to the guest.
gcc -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare $(pkg-config --cflags dbus-1) -o "$BENCH/bus_dbus_bench" \
	"$top/tests/bench/dbus/bus_dbus_bench.c" $(pkg-config --libs dbus-1)
daemon=$(command -v dbus-daemon)
adds=(--add "$top/scripts/bench-guest.sh:/usr/bin/"
	--add "$top/tests/bench/dbus/bench-bus.conf:/usr/share/af_bus/"
	--add "$BENCH/bus_bench" --add "$BENCH/bus_dbus_bench" --add "$daemon")
gargs=() perf=
if [ "${PERF:-0}" != 0 ] && [ $smoke -eq 0 ]; then
	if ! command -v perf >/dev/null; then
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends linux-perf >/dev/null
	fi
	perf=$(readlink -f "$(command -v perf)")
	adds+=(--add "$perf:/usr/bin/perf")
	gargs+=(--perf)
fi
declare -A libs=()
while read -r name _ path _; do
	case "$name" in
	/*) libs[/lib64/$(basename "$name")]=$name ;;
	*) [ -z "$path" ] || [ "${path:0:1}" != / ] || libs[/lib/x86_64-linux-gnu/$name]=$path ;;
	esac
done < <(ldd "$daemon" "$BENCH/bus_dbus_bench" ${perf:+"$perf"} | grep -v ':$')
[ -z "${BENCH_CASE:-}" ] || gargs+=(--case "$BENCH_CASE")
for dst in "${!libs[@]}"; do
	adds+=(--add "${libs[$dst]}:$dst")
done

log=$(mktemp -d "/tmp/bench-run.XXXXXX")
trap 'rm -rf "$log"' EXIT
echo "bench: $flavour kernel, $reps repetitions after a warm-up, scale $scale" >&2
rc=0
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout "${TIMEOUT:-3600}" \
	--log "$log" "${adds[@]}" -- sh /usr/bin/bench-guest.sh "${gargs[@]}" "$reps" "$scale" ${BENCH_GROUPS:-} |
	grep -v '^BENCH,' || rc=${PIPESTATUS[0]}
csv=$log/results.csv
echo "group,case,config,param,metric,unit,median,min,max,reps" >"$csv"
grep -a '^BENCH,' "$log/output.log" | tr -d '\r' | cut -d, -f2- >>"$csv" || true
if [ "$rc" -ne 0 ]; then
	echo "bench: a benchmark program or the guest failed (exit $rc)" >&2
	exit 1
fi
if [ $smoke -eq 1 ]; then
	echo "bench: smoke run ok ($(($(wc -l <"$csv") - 1)) figures)"
	exit 0
fi

out=${BENCH_OUT:-$top/bench-results}/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
if [ ${#gargs[@]} -gt 0 ] && [ "${gargs[0]}" = --perf ]; then
	mv "$out" "$out-perf"
	out=$out-perf
	grep -a '^# perf: ' "$log/output.log" | cut -c9- | tr -d '\r' >"$out/perf.txt"
	grep -a '^# fold: ' "$log/output.log" | cut -c9- | tr -d '\r' >"$out/perf.folded"
	cp "$log/output.log" "$out/guest.log"
	echo "bench: profile in $out/perf.txt"
	exit 0
fi
cp "$csv" "$log/output.log" "$out/"
mv "$out/output.log" "$out/guest.log"
{
	echo "kernel: $flavour ($(basename "$(dirname "$KDIR")")), $(grep -a '^# guest:' "$log/output.log" | cut -c3-)"
	echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), QEMU TCG"
	echo "$reps repetitions after a warm-up, scale $scale; median [min..max]"
	echo
	python3 "$top/scripts/bench-report.py" "$csv" "$out"
} | tee "$out/table.txt"
echo "bench: results in $out"
