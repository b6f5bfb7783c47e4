#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the benchmark guest: start a dbus-daemon, then the AF_BUS
# suite and its dbus-daemon peer, printing their CSV lines.  Exits
# non-zero if a benchmark program failed.
#
#   sh bench-guest.sh REPS SCALE [GROUP...]
#
# GROUPs are bus_bench's (rtt tput mcast match join); the dbus-daemon
# peer runs for rtt and mcast.  No GROUP: all of them.

reps=${1:-7}
scale=${2:-1}
shift 2
rc=0
dgroups=
for g in "$@"; do
	case "$g" in
	rtt | mcast) dgroups="$dgroups $g" ;;
	esac
done
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu

echo "# guest: $(nproc) CPUs, $(uname -r)"
dbus-daemon --config-file=/usr/share/af_bus/bench-bus.conf --nofork --nopidfile &
daemon=$!
i=0
while [ ! -S /tmp/bench-bus.sock ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done

bus_bench -r "$reps" -s "$scale" "$@" || { echo "# bench: bus_bench failed"; rc=1; }
if [ $# -gt 0 ] && [ -z "$dgroups" ]; then
	:
elif [ -S /tmp/bench-bus.sock ]; then
	# shellcheck disable=SC2086 # a list of words
	bus_dbus_bench -r "$reps" -s "$scale" -p "$daemon" unix:path=/tmp/bench-bus.sock $dgroups ||
		{ echo "# bench: bus_dbus_bench failed"; rc=1; }
else
	echo "# bench: dbus-daemon did not start"
	rc=1
fi
kill $daemon 2>/dev/null
wait $daemon 2>/dev/null
exit $rc
