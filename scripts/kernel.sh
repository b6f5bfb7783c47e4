#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or find in the cache) the patched guest kernel.
#
#   scripts/kernel.sh base|debug|kcsan
#
# Prints the kernel build directory (usable as KDIR) on its last line.
# The build lives in $AF_BUS_CACHE/kernel/<flavour>-<key>, where <key> is
# a hash of the Debian source version, the patch series, the config
# fragments, the toolchain versions and the build steps of this script.  A directory without its .complete stamp is a broken or
# interrupted build: it is removed and built again, never used.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"

flavour=${1:?usage: kernel.sh base|debug|kcsan}
# A flavour is configs/base.config plus its own fragment.  This table is
# not part of the key: a flavour's key covers its fragments' contents.
case "$flavour" in
base) fragments=("$top/configs/base.config") ;;
debug | kcsan) fragments=("$top/configs/base.config" "$top/configs/$flavour.config") ;;
*) echo "kernel.sh: unknown flavour '$flavour' (base, debug or kcsan)" >&2; exit 2 ;;
esac

"$top/scripts/setup.sh" >&2

# The key covers the build steps (everything from "dir=" on), not the
# flavour table above: adding a flavour rebuilds no other.
key=$( {
	echo "recipe 2"
	dpkg-query -W -f='${Version}\n' "$LINUX_SOURCE_PKG"
	stat -c %s "$LINUX_SOURCE_TAR"
	cat "$top"/patches/*.patch
	cat "${fragments[@]}"
	/usr/bin/rustc --version
	clang-19 --version | head -n 1
	"$BINDGEN" --version
	sed -n '/^dir=/,$p' "$0"
} | sha256sum | cut -c1-16)

dir="$AF_BUS_CACHE/kernel/$flavour-$key"
mkdir -p "$AF_BUS_CACHE/kernel"
exec 9>"$dir.lock"
flock 9

if [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$key" ]; then
	echo "kernel: $flavour kernel cached in $dir (key $key)" >&2
	echo "$dir/build"
	exit 0
fi

echo "kernel: building the $flavour kernel in $dir (key $key)" >&2
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/build"
tar -xf "$LINUX_SOURCE_TAR" -C "$dir/src" --strip-components=1
for p in "$top"/patches/*.patch; do
	echo "kernel: applying $(basename "$p")" >&2
	patch -d "$dir/src" -p1 --batch --forward --quiet <"$p"
done

kmake() {
	make -C "$dir/src" O="$dir/build" "${KMAKE_VARS[@]}" "$@"
}

kmake -s tinyconfig >&2
"$dir/src/scripts/kconfig/merge_config.sh" -m -O "$dir/build" \
	"$dir/build/.config" "${fragments[@]}" >/dev/null
kmake -s olddefconfig >&2

# Refuse a config where a requested option did not stick (a missing
# dependency silently drops it, and a "debug" kernel without KASAN
# would pass tests it should fail).
bad=0
while read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qx -- "$line" "$dir/build/.config" ||
			{ echo "kernel: config wants $line, got: $(grep "^${line%%=*}=" "$dir/build/.config" || echo unset)" >&2; bad=1; }
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }; opt=${opt%% *}
		! grep -q "^$opt=" "$dir/build/.config" ||
			{ echo "kernel: config wants $opt unset" >&2; bad=1; }
		;;
	esac
done < <(cat "${fragments[@]}")
[ $bad -eq 0 ] || { echo "kernel: config fragments do not apply cleanly" >&2; exit 1; }

start=$(date +%s)
kmake -j"$(nproc)" bzImage modules >"$dir/build.log" 2>&1 ||
	{ tail -n 40 "$dir/build.log" >&2; echo "kernel: build failed, log in $dir/build.log" >&2; exit 1; }
echo "kernel: built in $(( $(date +%s) - start )) s" >&2
echo "$key" >"$dir/.complete"
echo "$dir/build"
