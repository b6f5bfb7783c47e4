#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the guest: every AF_BUS kselftest, one after another, with
# their KTAP output.  Exits non-zero if any of them failed.

rc=0
for t in /usr/libexec/af_bus/tests/*; do
	[ -x "$t" ] || continue
	echo "# af_bus: $(basename "$t")"
	"$t" || rc=1
done
exit $rc
