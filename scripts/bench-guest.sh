#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the benchmark guest: start a dbus-daemon, then the AF_BUS
# suite and its dbus-daemon peer, printing their CSV lines.  Exits
# non-zero if a benchmark program failed.
#
#   sh bench-guest.sh [--perf] [--case CASE] [--size SIZE] REPS SCALE [GROUP...]
#
# GROUPs are bus_bench's (rtt path tput mcast match svc join mem) and dbus (the
# same-library group: zbus over AF_BUS, dbus-daemon, dbus-broker and the
# bridge); the
# dbus-daemon peer runs for rtt and mcast.  No GROUP: all of them.  CASE keeps one
# transport (bus_bench -k).  --perf profiles bus_bench's groups instead:
# perf record -a -g on each, its report printed on "# perf: " lines.

perf=0
kase= size=
while [ $# -gt 0 ]; do
	case "$1" in
	--perf) perf=1; shift ;;
	--case) kase=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	*) break ;;
	esac
done
reps=${1:-7}
scale=${2:-1}
shift 2
rc=0
dgroups= zgroup=0 bgroups=
[ $# -gt 0 ] || zgroup=1
for g in "$@"; do
	case "$g" in
	rtt | mcast) dgroups="$dgroups $g" ;;
	esac
	case "$g" in
	dbus) zgroup=1 ;;
	*) bgroups="$bgroups $g" ;;
	esac
done
# Only the dbus group asked for: bus_bench and its dbus-daemon peer skip.
if [ $# -gt 0 ] && [ -z "$bgroups" ]; then
	set -- none
else
	# shellcheck disable=SC2086 # a list of words
	set -- $bgroups
fi
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu

echo "# guest: $(nproc) CPUs, $(uname -r)"
# The same queue depth for AF_UNIX datagrams as for an AF_BUS queue.
qlen=$(cat /sys/module/af_bus/parameters/max_queue_msgs 2>/dev/null || echo 256)
echo "$qlen" >/proc/sys/net/unix/max_dgram_qlen
echo "# queue depth: $qlen messages for AF_BUS and AF_UNIX datagrams"
dbus-daemon --config-file=/usr/share/af_bus/bench-bus.conf --nofork --nopidfile &
daemon=$!
i=0
while [ ! -S /tmp/bench-bus.sock ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done

if [ $perf -eq 1 ]; then
	echo 0 >/proc/sys/kernel/kptr_restrict
	echo -1 >/proc/sys/kernel/perf_event_paranoid
	# TCG makes every sample slow: keep perf from lowering the rate.
	echo 0 >/proc/sys/kernel/perf_cpu_time_max_percent
	echo 100000 >/proc/sys/kernel/perf_event_max_sample_rate
	for g in ${*:-rtt path tput mcast match svc join mem}; do
		perf record -q -a -g -F 4999 -e cpu-clock -o "/tmp/perf-$g.data" -- \
			bus_bench -r "$reps" -s "$scale" ${kase:+-k "$kase"} ${size:+-z "$size"} "$g" >/dev/null ||
			{ echo "# bench: bus_bench $g failed under perf"; rc=1; }
		echo "# perf: ==== group $g${kase:+, case $kase}: self time by symbol"
		perf report -i "/tmp/perf-$g.data" --stdio --no-children --comms bus_bench -n \
			--sort dso,sym --percent-limit 0.3 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
			sed 's/^/# perf: /'
		echo "# perf: ==== group $g: callees of the heaviest symbols"
		perf report -i "/tmp/perf-$g.data" --stdio --children --comms bus_bench -n \
			--sort sym --percent-limit 3 -g caller,1,callee --max-stack 12 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -n 300 | sed 's/^/# perf: /'
		# Folded stacks (flamegraph.pl's input), root first.
		perf script -i "/tmp/perf-$g.data" --comms bus_bench -F comm,ip,sym 2>/dev/null |
			awk -v g="$g" '
				/^[ \t]*$/ { if (n) { s = g; for (i = n; i >= 1; i--) s = s ";" f[i]; c[s]++ } n = 0; next }
				/^\t/ { n++; f[n] = $2 }
				END { if (n) { s = g; for (i = n; i >= 1; i--) s = s ";" f[i]; c[s]++ }
				      for (k in c) print "# fold: " k " " c[k] }'
		rm -f "/tmp/perf-$g.data"
	done
	kill $daemon 2>/dev/null
	wait $daemon 2>/dev/null
	exit $rc
fi

if [ "$*" != none ]; then
	bus_bench -r "$reps" -s "$scale" ${kase:+-k "$kase"} ${size:+-z "$size"} "$@" ||
		{ echo "# bench: bus_bench failed"; rc=1; }
fi
if [ "$*" = none ] || { [ $# -gt 0 ] && [ -z "$dgroups" ]; } || [ -n "$kase" ] || [ -n "$size" ]; then
	:
elif [ -S /tmp/bench-bus.sock ]; then
	# shellcheck disable=SC2086 # a list of words
	bus_dbus_bench -r "$reps" -s "$scale" -p "$daemon" unix:path=/tmp/bench-bus.sock $dgroups ||
		{ echo "# bench: bus_dbus_bench failed"; rc=1; }
else
	echo "# bench: dbus-daemon did not start"
	rc=1
fi
# The same-library D-Bus group: zbus over AF_BUS, through dbus-daemon and
# through the bridge (afbus-dbus's master and bridge on a bench bus).
if [ $zgroup -eq 1 ] && [ -z "$kase" ] && [ -z "$size" ]; then
	mkdir -p /run/afbus
	printf '[join]\nuids = "*"\n[[own]]\nname = "org.example.*"\nuids = [0]\n' >/tmp/bench-policy.toml
	afbus-dbus --bus /run/afbus/bench master --policy /tmp/bench-policy.toml >/tmp/bench-master.log 2>&1 &
	master=$!
	afbus-dbus --bus /run/afbus/bench bridge --listen /tmp/bench-bridge.sock >/tmp/bench-bridge.log 2>&1 &
	bridge=$!
	i=0
	until grep -q serving /tmp/bench-master.log && grep -q serving /tmp/bench-bridge.log; do
		i=$((i + 1))
		[ $i -le 100 ] || break
		sleep 0.1
	done
	# dbus-broker, when bench.sh brought it: it wants a machine id.
	bargs=
	if command -v dbus-broker-launch >/dev/null; then
		[ -s /etc/machine-id ] || echo 0123456789abcdef0123456789abcdef >/etc/machine-id
		bargs="--broker-config /usr/share/af_bus/bench-broker.conf"
		# and inotify, which these kernels lack: a shim for the launcher.
		[ -d /proc/sys/fs/inotify ] || [ ! -e /usr/lib/af_bus/no-inotify.so ] ||
			export AFBUS_BROKER_PRELOAD=/usr/lib/af_bus/no-inotify.so
	fi
	# shellcheck disable=SC2086 # a list of words
	afbus-dbus-test --bus /run/afbus/bench bench --reps "$reps" --scale "$scale" \
		--master-pid "$master" --bridge-pid "$bridge" --bridge unix:path=/tmp/bench-bridge.sock \
		--daemon unix:path=/tmp/bench-bus.sock --daemon-pid "$daemon" $bargs ||
		{ echo "# bench: the dbus group failed"; cat /tmp/bench-master.log /tmp/bench-bridge.log; rc=1; }
	kill $master $bridge 2>/dev/null
fi
kill $daemon 2>/dev/null
wait $daemon 2>/dev/null
exit $rc
