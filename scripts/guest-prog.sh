#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the guest by `make run PROG=...`: start a D-Bus bus on AF_BUS
# (afbus-dbus's master on /run/afbus/system with the demo policy, and its
# bridge on unix:path=/run/dbus/system_bus_socket, which is what
# DBUS_SYSTEM_BUS_ADDRESS names), then run the user's command line.

if command -v afbus-dbus >/dev/null; then
	mkdir -p /run/afbus /run/dbus
	afbus-dbus --bus /run/afbus/system master --policy /etc/afbus-dbus/demo.toml \
		>/tmp/master.log 2>&1 &
	master=$!
	n=0
	until grep -q serving /tmp/master.log; do
		n=$((n + 1))
		[ $n -le 100 ] || { cat /tmp/master.log; exit 1; }
		sleep 0.1
	done
	afbus-dbus --bus /run/afbus/system bridge --listen /run/dbus/system_bus_socket \
		>/tmp/bridge.log 2>&1 &
	bridge=$!
	until grep -q serving /tmp/bridge.log; do sleep 0.1; done
	export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket
	export AFBUS_SYSTEM_BUS=/run/afbus/system
	echo "guest: a D-Bus bus on AF_BUS: $DBUS_SYSTEM_BUS_ADDRESS (bridge), $AFBUS_SYSTEM_BUS (native)"
fi
sh -c "$*"
rc=$?
# The bus goes with the command: its sockets would keep the module in use.
if [ -n "${master:-}" ]; then
	kill "$bridge" "$master" 2>/dev/null
	wait "$bridge" "$master" 2>/dev/null
fi
exit $rc
