#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The main job's script, run in the guest by `make run`: a scripted
# session on a real bus, with afbusctl's reference master (tools/busctl) and clients.
# Each actor writes to its own log; the script waits for the line each
# step needs and prints what every actor said since the last step, so
# the transcript reads in order however the two vCPUs schedule them.

set -u
export BUSCTL_BUS=/run/bus/demo
logs=/tmp/demo
mkdir -p /run/bus "$logs"
: >"$logs/actors"

fail() {
	echo "demo: $*"
	for f in "$logs"/*.log; do echo "--- $f"; cat "$f"; done
	exit 1
}

# start NAME COMMAND...: run an actor in the background, logging to NAME.
start() {
	name=$1
	shift
	: >"$logs/$name.log"
	echo 0 >"$logs/$name.shown"
	echo "$name" >>"$logs/actors"
	"$@" >"$logs/$name.log" 2>&1 &
	eval "pid_$name=$!"
}

# wait_for NAME PATTERN: until the actor NAME has printed PATTERN.
wait_for() {
	n=0
	until grep -q -- "$2" "$logs/$1.log"; do
		n=$((n + 1))
		[ $n -le 300 ] || fail "timed out waiting for \"$2\" from $1"
		sleep 0.1
	done
}

# Prints what each actor said since the last call, prefixed with its name.
said() {
	for name in $(cat "$logs/actors"); do
		total=$(wc -l <"$logs/$name.log")
		shown=$(cat "$logs/$name.shown")
		[ "$total" -le "$shown" ] ||
			sed -n "$((shown + 1)),${total}p" "$logs/$name.log" | sed "s/^/  [$name] /"
		echo "$total" >"$logs/$name.shown"
	done
}

# run COMMAND...: a client in the foreground, its output indented.
run() {
	line=
	for a in "$@"; do
		case "$a" in
		*" "*) line="$line \"$a\"" ;;
		*) line="$line $a" ;;
		esac
	done
	echo "  \$$line"
	"$@" >"$logs/run.out" 2>&1
	rc=$?
	sed 's/^/    /' "$logs/run.out"
	[ $rc -eq 0 ] || echo "    (exit status $rc)"
}

step() {
	echo
	echo "== $*"
}

echo "== $(uname -sr) with $(grep -c '^af_bus ' /proc/modules) af_bus module loaded: $(dmesg | grep -m1 -o 'AF_BUS.*')"
echo "   afbusctl $(afbusctl --version | cut -d' ' -f2), a static Rust binary; the policy of this bus:"
grep -v '^#' /etc/afbus/demo.toml | grep . | sed 's/^/     /'

step "the master binds $BUSCTL_BUS as org.afbus.Bus and applies the policy"
start master afbusctl master "$BUSCTL_BUS" --name org.afbus.Bus --policy /etc/afbus/demo.toml
wait_for master serving
said
run ls -l "$BUSCTL_BUS"

step "a service joins (the master checks its credentials) and takes org.example.Echo"
start service afbusctl join --name org.example.Echo --serve
wait_for service "org.example.Echo: primary-owner"
wait_for master "owns org.example.Echo"
said

step "a client joins and calls the service by name"
run afbusctl call org.example.Echo "ping"
wait_for service "serve: call"
said

step "the policy lets root own org.example.* only"
run afbusctl join --name org.other.Thing
said

step "two listeners subscribe to the Changed signal's member pair"
run afbusctl bloom member=Changed member=Changed27566
echo "  member=Changed27566 differs from every pair of the signal below, but"
echo "  its four bloom bits are all among the signal's 16 (found by search):"
echo "  the kernel's bloom match lets it through, its BPF filter drops it."
start listener1 afbusctl listen --match member=Changed --count 1 --timeout 30
start listener2 afbusctl listen --match member=Changed27566 --timeout 4
start watcher afbusctl listen --match member=NameOwnerChanged --match name=org.example.Echo --count 1 --timeout 60
wait_for listener1 "listening as"
wait_for listener2 "listening as"
wait_for watcher "listening as"
said

step "root emits the signal (the master grants the send first)"
run afbusctl emit interface=org.example.Echo member=Changed path=/org/example/Echo \
	sender=org.example.Echo "state is now 42"
wait_for listener1 "signal from"
wait_for listener2 "nothing more"
said
echo "  (listener2's queue stayed empty: its filter ran in the kernel, it never woke)"

step "the service is killed; the kernel tells the master, which announces the name change"
kill -9 "$pid_service"
wait_for master NameOwnerChanged
wait_for watcher "signal from"
said

step "the client calls again"
run afbusctl call org.example.Echo "ping"

step "what the bus looks like now (/proc/net/bus)"
run afbusctl list

if command -v afbus-dbus >/dev/null; then
	dbus_bus=/run/afbus/system
	step "D-Bus on AF_BUS: afbus-dbus serves org.freedesktop.DBus on $dbus_bus"
	start dbusmaster afbus-dbus --bus "$dbus_bus" master --policy /etc/afbus-dbus/demo.toml
	wait_for dbusmaster serving
	said

	step "a zbus service (#[interface] org.example.Echo) joins with Builder::socket(AfBus::open(BUS)?)"
	start zbus_service afbus-dbus-test --bus "$dbus_bus" service --name org.example.Echo --id zbus-service
	wait_for zbus_service ready
	wait_for dbusmaster "org.example.Echo granted"
	said

	step "a zbus client calls it through the kernel (the master is not on the path), sets a property, gets a signal"
	run afbus-dbus-test --bus "$dbus_bus" client hello
	said

	step "the names on the D-Bus bus, and busctl's view of the sockets"
	run afbus-dbus --bus "$dbus_bus" names
	run afbusctl list

	step "the zbus service is killed; the master announces NameOwnerChanged"
	kill -9 "$pid_zbus_service"
	wait_for dbusmaster 'NameOwnerChanged org.example.Echo: ":1\.[0-9]*" -> ""'
	said

	if command -v dbus-send >/dev/null; then
		step "unmodified D-Bus clients: afbus-dbus bridge listens on unix:path=/run/dbus/system_bus_socket"
		mkdir -p /run/dbus
		start bridge afbus-dbus --bus "$dbus_bus" bridge --listen /run/dbus/system_bus_socket
		wait_for bridge serving
		start zbus_service2 afbus-dbus-test --bus "$dbus_bus" service --name org.example.Echo --id zbus-service
		wait_for zbus_service2 ready
		wait_for dbusmaster "org.example.Echo granted"
		said

		step "Debian's dbus-send (libdbus) calls the native zbus service through the bridge"
		export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket
		run dbus-send --system --print-reply --dest=org.example.Echo \
			/org/example/Echo org.example.Echo.Ping string:"hello from dbus-send"
		said
		kill "$pid_zbus_service2" "$pid_bridge" 2>/dev/null
	fi
	kill "$pid_dbusmaster" 2>/dev/null
fi

kill "$pid_master" 2>/dev/null
wait 2>/dev/null
echo
echo "== the end: the master is gone, and with it the bus"

if [ "${1:-}" = --then-shell ]; then
	afbusctl master /run/bus/system --policy /etc/afbus/demo.toml >/tmp/master.log 2>&1 &
	cat <<'HINT'

== your turn: a master now serves /run/bus/system (busctl's default bus,
   same policy; its log is /tmp/master.log).  Try:
     afbusctl join --name org.example.Me --serve &
     afbusctl call org.example.Me hello
     afbusctl listen --match member=Ping & afbusctl emit member=Ping hi
     afbusctl monitor --timeout 5 ; afbusctl list ; afbusctl --help
   The C examples are on PATH too: bus-demo, readme-example, ...
HINT
fi
