# SPDX-License-Identifier: GPL-2.0
#
# Settings shared by the scripts: where caches live and which tools the
# kernel and the module are built with.  Sourced, not run.

AF_BUS_CACHE=${AF_BUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/af_bus}
BINDGEN_VERSION=0.73.2
BINDGEN=${BINDGEN:-$AF_BUS_CACHE/tools/bin/bindgen}
LINUX_SOURCE_PKG=linux-source-6.12
LINUX_SOURCE_TAR=/usr/src/linux-source-6.12.tar.xz
export PATH="/usr/lib/llvm-19/bin:$PATH"

# The variables every kernel and module build gets.
KMAKE_VARS=(LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	BINDGEN="$BINDGEN" HOSTRUSTC=/usr/bin/rustc
	CLIPPY_DRIVER=/usr/bin/clippy-driver)
