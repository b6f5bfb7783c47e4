#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the guest by scripts/dbus-conformance.sh: Debian's dbus-tests
# installed tests that can use an existing bus (DBUS_TEST_DAEMON_ADDRESS),
# first against dbus-daemon (the reference, same boot), then through the
# afbus-dbus bridge to a bus on AF_BUS.  Prints each test's TAP summary
# and one "CONFORMANCE,bus,test,ok,notok,skip,exit" line per run.
#
#   sh dbus-conformance-guest.sh TEST...

dir=/usr/lib/dbus-1.0/installed-tests/dbus
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
[ -s /etc/machine-id ] || echo 0123456789abcdef0123456789abcdef >/etc/machine-id
mkdir -p /run/afbus /var/lib/dbus
cp /etc/machine-id /var/lib/dbus/machine-id

dbus-daemon --config-file=/usr/share/af_bus/bench-bus.conf --nofork --nopidfile &
daemon=$!
printf '[join]\nuids = "*"\n[[own]]\nname = "org.*"\nuids = "*"\n[[own]]\nname = "com.*"\nuids = "*"\n' >/tmp/conf-policy.toml
afbus-dbus --bus /run/afbus/conformance master --policy /tmp/conf-policy.toml >/tmp/master.log 2>&1 &
master=$!
afbus-dbus --bus /run/afbus/conformance bridge --listen /tmp/conformance.sock >/tmp/bridge.log 2>&1 &
bridge=$!
n=0
until [ -S /tmp/bench-bus.sock ] && grep -q serving /tmp/master.log && grep -q serving /tmp/bridge.log; do
	n=$((n + 1))
	[ $n -le 200 ] || { echo "conformance: a bus did not start"; cat /tmp/master.log /tmp/bridge.log; exit 1; }
	sleep 0.1
done

for bus in dbus-daemon afbus-bridge; do
	case $bus in
	dbus-daemon) addr=unix:path=/tmp/bench-bus.sock ;;
	*) addr=unix:path=/tmp/conformance.sock ;;
	esac
	for t in "$@"; do
		echo "# ==== $t on $bus"
		DBUS_TEST_DAEMON_ADDRESS=$addr DBUS_SESSION_BUS_ADDRESS=$addr \
			timeout 600 "$dir/$t" --tap >/tmp/tap 2>/tmp/tap.err
		rc=$?
		grep -E '^(not ok|Bail out)' /tmp/tap | sed 's/^/#   /'
		# What ran last, for a program that stopped early.
		if grep -q '^Bail out' /tmp/tap; then
			grep -E '^(ok|# Start of|# End of|# [a-z])' /tmp/tap | tail -n 4 | sed 's/^/#   last: /'
		fi
		ok=$(grep -c '^ok' /tmp/tap)
		notok=$(grep -c '^not ok' /tmp/tap)
		skip=$(grep -c '# SKIP' /tmp/tap)
		echo "CONFORMANCE,$bus,$t,$ok,$notok,$skip,$rc"
	done
done
kill $daemon $master $bridge 2>/dev/null
grep -i 'panic\|error' /tmp/bridge.log | head -5 | sed 's/^/# bridge: /'
exit 0
