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
# BENCH_CASE (e.g. af_bus, unix_dgram) only that transport in them,
# BENCH_SIZE (64, 4096, 65536) only that message size in rtt, path, tput.
#
# ICOUNT=1 runs the guest with QEMU -icount shift=0,sleep=off: guest time
# then advances one nanosecond per guest instruction (of either vCPU,
# which take turns on one host thread) and not at all while both idle,
# so every time figure is an instruction count that does not move with
# the host's load.  The report adds a table of guest instructions per
# operation with three-state verdicts, and the calib group (what the
# clock counts for a loop and for rep movs copies).  BOOTS (1) repeats
# the whole run in that many boots; the report pools them (median of the
# boots' medians, the lowest min and the highest max).
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
icount=${ICOUNT:-0} boots=${BOOTS:-1}
groups=${BENCH_GROUPS:-} mode= qmode=
if [ "$icount" != 0 ]; then
	mode=", instruction counts" qmode=" -icount shift=0,sleep=off"
	# Instruction counting is TCG's: no KVM for this run.
	export AF_BUS_ACCEL=tcg
	export AF_BUS_QEMU_ARGS="-icount shift=0,sleep=off"
	[ -n "$groups" ] || groups="rtt path tput mcast match svc join mem calib dbus"
fi

# The dbus-daemon peer is linked against libdbus (Debian ships no static
# libsystemd for it); it, the daemon and their libraries go to the guest.
gcc -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare $(pkg-config --cflags dbus-1) -o "$BENCH/bus_dbus_bench" \
	"$top/tests/bench/dbus/bus_dbus_bench.c" $(pkg-config --libs dbus-1)
daemon=$(command -v dbus-daemon)
adds=(--add "$top/scripts/bench-guest.sh:/usr/bin/"
	--add "$top/tests/bench/dbus/bench-bus.conf:/usr/share/af_bus/"
	--add "$top/tests/bench/dbus/bench-broker.conf:/usr/share/af_bus/"
	--add "$BENCH/bus_bench" --add "$BENCH/bus_dbus_bench" --add "$daemon"
	--add "$AFBUS_DBUS" --add "$AFBUS_DBUS_TEST")
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
# dbus-broker for the dbus group: unpacked from Debian's package into the
# cache, never installed (on a systemd host that would replace the running
# system bus).  Without it the group reports dbus-broker as not judged.
broker=
bdir=${XDG_CACHE_HOME:-$HOME/.cache}/af_bus/dbus-broker
if [ ! -x "$bdir/usr/bin/dbus-broker-launch" ]; then
	rm -rf "$bdir.tmp" && mkdir -p "$bdir.tmp"
	if (cd "$bdir.tmp" && apt-get download -qq dbus-broker >/dev/null 2>&1) &&
		dpkg-deb -x "$bdir.tmp"/dbus-broker_*.deb "$bdir.tmp/root"; then
		rm -rf "$bdir" && mv "$bdir.tmp/root" "$bdir"
	else
		echo "bench: could not fetch Debian's dbus-broker (apt-get download dbus-broker); its rows are left out" >&2
	fi
	rm -rf "$bdir.tmp"
fi
if [ -x "$bdir/usr/bin/dbus-broker-launch" ] &&
	! ldd "$bdir/usr/bin/dbus-broker-launch" "$bdir/usr/bin/dbus-broker" | grep -q 'not found'; then
	broker="$bdir/usr/bin/dbus-broker-launch $bdir/usr/bin/dbus-broker"
	for b in $broker; do adds+=(--add "$b"); done
	# The guest kernels have no inotify, which the launcher insists on.
	gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$BENCH/no-inotify.so" \
		"$top/tests/bench/dbus/no-inotify.c"
	adds+=(--add "$BENCH/no-inotify.so:/usr/lib/af_bus/no-inotify.so")
fi
# shellcheck disable=SC2086 # a list of words
mapfile -t libadds < <("$top/scripts/guest-libs.sh" "$daemon" "$BENCH/bus_dbus_bench" ${perf:+"$perf"} $broker)
adds+=("${libadds[@]}")
[ -z "${BENCH_CASE:-}" ] || gargs+=(--case "$BENCH_CASE")
[ -z "${BENCH_SIZE:-}" ] || gargs+=(--size "$BENCH_SIZE")

log=$(mktemp -d "/tmp/bench-run.XXXXXX")
trap 'rm -rf "$log"' EXIT
echo "bench: $flavour kernel, $reps repetitions after a warm-up, scale $scale$mode, $boots boot(s)" >&2
load0=$(cut -d' ' -f1-3 /proc/loadavg)
rc=0
csv=$log/results.csv
echo "group,case,config,param,metric,unit,median,min,max,reps" >"$csv"
: >"$log/guest.log"
for boot in $(seq 1 "$boots"); do
	[ "$boots" -eq 1 ] || echo "bench: boot $boot of $boots" >&2
	"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout "${TIMEOUT:-3600}" \
		--log "$log/boot" "${adds[@]}" -- sh /usr/bin/bench-guest.sh "${gargs[@]}" "$reps" "$scale" $groups |
		grep -v '^BENCH,' || rc=${PIPESTATUS[0]}
	grep -a '^BENCH,' "$log/boot/output.log" | tr -d '\r' | cut -d, -f2- >>"$csv" || true
	cat "$log/boot/output.log" >>"$log/guest.log"
	cp "$log/boot/output.log" "$log/output.log"
	[ "$rc" -eq 0 ] || break
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
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
cp "$csv" "$log/guest.log" "$out/"
commit=$(git -C "$top" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+changes"
{
	echo "commit: $commit; kernel: $flavour, config key $(basename "$(dirname "$KDIR")"), $(grep -a -m1 '^# guest:' "$log/guest.log" | cut -c3-)"
	echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(qemu-system-x86_64 --version | head -n 1), TCG$qmode; load average $load0 before, $load1 after"
	echo "$reps repetitions after a warm-up, scale $scale, $boots boot(s); median [min..max]"
	echo
	BENCH_ICOUNT=$icount python3 "$top/scripts/bench-report.py" "$csv" "$out"
} | tee "$out/table.txt"
echo "bench: results in $out"
