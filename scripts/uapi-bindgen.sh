#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Generates the Rust view of include/uapi/linux/bus.h with bindgen: the
# one source of the wire format for the module (scripts/build.sh), the
# host crate af_bus_core and, through it, busctl (af_bus/build.rs).
#
#   scripts/uapi-bindgen.sh OUT.rs

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"
out=${1:?usage: uapi-bindgen.sh OUT.rs}

if ! [ -x "$BINDGEN" ]; then
	BINDGEN=$(command -v bindgen || true)
fi
if [ -z "$BINDGEN" ]; then
	echo "uapi-bindgen.sh: bindgen not found: run 'make check' once (it installs" \
		"bindgen-cli $BINDGEN_VERSION into $AF_BUS_CACHE/tools) or set BINDGEN" >&2
	exit 1
fi
[ -n "${LIBCLANG_PATH:-}" ] || [ ! -d /usr/lib/llvm-19/lib ] || export LIBCLANG_PATH=/usr/lib/llvm-19/lib

"$BINDGEN" "$top/include/uapi/linux/bus.h" \
	--allowlist-file '.*/include/uapi/linux/bus\.h' \
	--use-core --ctypes-prefix core::ffi --no-layout-tests --no-prepend-enum-name \
	--default-enum-style consts --raw-line '// Generated from include/uapi/linux/bus.h by scripts/uapi-bindgen.sh.' \
	-o "$out.tmp" -- -I "$top/include/uapi"
mv "$out.tmp" "$out"
