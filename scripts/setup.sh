#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and testing AF_BUS needs on a Debian 12 host:
# Debian packages (kernel source, LLVM 19, the Rust compiler that ships
# rust-src, QEMU, busybox; dbus and gnuplot for the benchmarks; dbus-bin,
# libglib2.0-bin and dbus-tests for the bridge's legacy clients) and
# bindgen from crates.io.  Idempotent: a second run only checks.  Prints
# the environment the build uses.

set -euo pipefail

. "$(dirname "$0")/env.sh"

PACKAGES=(
	linux-source-6.12 rustc-web rust-web-src rust-web-clippy
	clang-19 lld-19 llvm-19 libclang-19-dev
	flex bison bc libelf-dev libssl-dev cpio kmod xz-utils make
	gcc g++ libc6-dev linux-libc-dev
	qemu-system-x86 busybox-static python3 python3-docutils
	dbus libdbus-1-dev pkg-config gnuplot-nox
	dbus-bin libglib2.0-bin dbus-tests
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
command -v cargo >/dev/null || missing+=(cargo-web)

if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to install Debian packages (run as root or install them: ${missing[*]})" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$BINDGEN" --version 2>/dev/null | grep -q "bindgen $BINDGEN_VERSION"; then
	echo "setup: installing bindgen-cli $BINDGEN_VERSION into $AF_BUS_CACHE/tools"
	mkdir -p "$AF_BUS_CACHE/tools"
	cargo install --quiet --locked --root "$AF_BUS_CACHE/tools" \
		"bindgen-cli@$BINDGEN_VERSION"
fi
