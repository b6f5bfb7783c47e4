#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build AF_BUS for one kernel: the kernel (cached), af_bus.ko, the
# kselftests, the examples and busctl.
#
#   scripts/build.sh base|debug|kcsan use the cached kernel of that config
#   KDIR=/path scripts/build.sh custom use a kernel you built
#
# Writes $BUILD/<flavour>/vars (KDIR, KSRC, BZIMAGE, KO, TESTS, STRESS...) for the other
# scripts and prints its path.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"
BUILD=${BUILD:-$top/build}
flavour=${1:?usage: build.sh base|debug|kcsan|custom}

if [ "$flavour" = custom ]; then
	[ -n "${KDIR:-}" ] || { echo "build.sh: custom needs KDIR" >&2; exit 2; }
	"$top/scripts/setup.sh" >&2
	kdir=$(cd "$KDIR" && pwd)
else
	kdir=$("$top/scripts/kernel.sh" "$flavour" | tail -n 1)
fi
if [ -d "$kdir/source/tools/testing/selftests" ]; then
	ksrc=$(cd "$kdir/source" && pwd)
elif [ -d "$kdir/../src/tools/testing/selftests" ]; then
	ksrc=$(cd "$kdir/../src" && pwd)
else
	ksrc=$kdir
fi
[ -f "$ksrc/tools/testing/selftests/kselftest_harness.h" ] ||
	{ echo "build.sh: no kselftest_harness.h under $ksrc" >&2; exit 2; }

out=$BUILD/$flavour
mkdir -p "$out/module/af_bus" "$out/tests" "$out/splat"

# Build in a copy, so that several kernels can be built for side by side
# and the tree stays clean.  cp -p keeps mtimes: kbuild stays incremental.
cp -p "$top/Kbuild" "$out/module/"
rm -f "$out/module/af_bus/"*.rs "$out/module/af_bus/"*.[ch]
rm -rf "$out/module/af_bus/core" "$out/module/af_bus/sys"
mkdir -p "$out/module/af_bus/core" "$out/module/af_bus/sys"
cp -p "$top"/af_bus/*.rs "$top"/af_bus/*.[ch] "$top/af_bus/Kbuild" "$out/module/af_bus/"
cp -p "$top"/af_bus/core/*.rs "$out/module/af_bus/core/"
cp -p "$top"/af_bus/sys/*.rs "$out/module/af_bus/sys/"
rm -f "$out/module/af_bus/core/lib.rs" "$out/module/af_bus/build.rs"
# The UAPI as Rust, from bus.h (uapi.rs includes it from OUT_DIR, as the
# host crate's build.rs has it).
"$top/scripts/uapi-bindgen.sh" "$out/module/af_bus/bus_h.rs"
OUT_DIR="$out/module/af_bus" make -s -C "$kdir" "${KMAKE_VARS[@]}" M="$out/module" \
	${CLIPPY:+CLIPPY=1} modules >&2
cp -p "$top/tests/splat/"* "$out/splat/"
make -s -C "$kdir" "${KMAKE_VARS[@]}" M="$out/splat" modules >&2

cflags=(-static -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter
	-Wno-missing-field-initializers -Wno-clobbered -Wno-sign-compare -Wno-misleading-indentation
	-I "$top/include/uapi" -I "$ksrc/tools/testing/selftests")
# The family's selftests through their own Makefile (the kernel's lib.mk,
# as in a kernel tree), static for the guest and with warnings as errors;
# then the project's integration tests.
make -s -C "$top/tests/kselftest" KSRC="$ksrc" OUTPUT="$out/tests" CC=gcc \
	USERCFLAGS="${cflags[*]}" USERLDFLAGS=-static >&2
for t in "$top"/tests/integration/*.c; do
	gcc "${cflags[@]}" -I "$top/tests/kselftest" -o "$out/tests/$(basename "$t" .c)" "$t" -lpthread
done
mkdir -p "$out/bench"
for b in "$top"/tests/bench/*.c; do
	gcc "${cflags[@]}" -o "$out/bench/$(basename "$b" .c)" "$b"
done
for kind in stress fuzz; do
	mkdir -p "$out/$kind"
	for s in "$top/tests/$kind"/*.c; do
		[ -e "$s" ] || continue
		gcc "${cflags[@]}" -o "$out/$kind/$(basename "$s" .c)" "$s" -lpthread
	done
done
mkdir -p "$out/examples"
for e in "$top"/examples/*.c; do
	[ -e "$e" ] || continue
	gcc "${cflags[@]}" -o "$out/examples/$(basename "$e" .c)" "$e"
done
# The documentation's worked examples, extracted so they cannot rot.
rm -rf "$out/doc-examples"
/usr/bin/python3 "$top/scripts/doc-examples.py" "$top/Documentation/af_bus.rst" \
	"$out/doc-examples" >/dev/null
for e in "$out"/doc-examples/*.c; do
	gcc "${cflags[@]}" -I "$out/doc-examples" -I "$top/tools/busctl" \
		-o "$out/examples/$(basename "$e" .c)" "$e"
done

# afbusctl (tools/busctl), the userspace tool and reference master: Rust, crates from
# crates.io (pinned by Cargo.lock), linked statically for the guest.  Its
# target directory lives in the cache, so a fresh clone reuses it.
mkdir -p "$out/tools"
busctl_target=$AF_BUS_CACHE/cargo-target/busctl
(cd "$top/tools/busctl" &&
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$busctl_target" \
	cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu) >&2
cp -p "$busctl_target/x86_64-unknown-linux-gnu/release/afbusctl" "$out/tools/afbusctl"

# afbus-dbus (D-Bus on AF_BUS: the master and the zbus socket) and its
# end-to-end test, the same way.
dbus_target=$AF_BUS_CACHE/cargo-target/afbus-dbus
(cd "$top/tools/afbus-dbus" &&
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$dbus_target" \
	cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu) >&2
for b in afbus-dbus afbus-dbus-test; do
	cp -p "$dbus_target/x86_64-unknown-linux-gnu/release/$b" "$out/tools/$b"
done

cat >"$out/vars" <<VARS
KDIR=$kdir
KSRC=$ksrc
BZIMAGE=$kdir/arch/x86/boot/bzImage
KO=$out/module/af_bus/af_bus.ko
SPLAT_KO=$out/splat/af_bus_splat.ko
TESTS=$out/tests
EXAMPLES=$out/examples
BENCH=$out/bench
BUSCTL=$out/tools/afbusctl
AFBUS_DBUS=$out/tools/afbus-dbus
AFBUS_DBUS_TEST=$out/tools/afbus-dbus-test
STRESS=$out/stress
FUZZ=$out/fuzz
VARS
echo "$out/vars"
