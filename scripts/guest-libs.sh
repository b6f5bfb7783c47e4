#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# guest-libs.sh PROGRAM...: the vm.sh arguments that put the shared
# libraries of dynamically linked PROGRAMs into the guest (the dynamic
# loader at /lib64, the rest at /lib/x86_64-linux-gnu), one per line:
#   --add
#   /lib/x86_64-linux-gnu/libdbus-1.so.3.32.4:/lib/x86_64-linux-gnu/libdbus-1.so.3
# Static programs need none.  Used by make bench, make check and
# make run PROG=.

set -euo pipefail

declare -A libs=()
for prog in "$@"; do
	out=$(ldd "$prog" 2>/dev/null) || continue
	while read -r name _ path _; do
		case "$name" in
		/*) libs[/lib64/$(basename "$name")]=$(readlink -f "$name") ;;
		*) [ -z "$path" ] || [ "${path:0:1}" != / ] ||
			libs[/lib/x86_64-linux-gnu/$name]=$(readlink -f "$path") ;;
		esac
	done < <(grep -v ':$' <<<"$out")
done
for dst in "${!libs[@]}"; do
	printf -- '--add\n%s:%s\n' "${libs[$dst]}" "$dst"
done
