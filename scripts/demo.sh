#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The main job's script, run in the guest: show AF_BUS registered and a
# bus working.

echo "== $(uname -sr), AF_BUS module loaded:"
grep '^af_bus ' /proc/modules
dmesg | grep -m1 'AF_BUS family'
echo
echo "== /proc/net/protocols knows the family's proto:"
head -n 1 /proc/net/protocols | cut -c1-40
grep '^AF_BUS' /proc/net/protocols | cut -c1-40
echo
mkdir -p /run/bus
echo "== bus-demo /run/bus/demo"
bus-demo /run/bus/demo
echo
echo "== the README's example"
readme-example && echo "readme-example: bound the abstract bus @my-bus"
