#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: host unit tests, the UAPI header in C and C++, the guest
# runner's own splat detection, the benchmarks in smoke mode, and every
# kselftest in the debug guest.
# Ends with "N passed, N failed" counted from the kselftest results.

set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"
flavour=${1:-debug}
BUILD=${BUILD:-$top/build}
problems=()
start=$SECONDS
# Each stage's heading says when it began, so a slow machine shows where
# its time went.
stage() { echo "== $* [$((SECONDS - start)) s]"; }

stage "setup and build ($flavour kernel), the module with CLIPPY=1"
rm -f "$BUILD/$flavour/module/af_bus/"*.o
build_log=$(mktemp)
if ! CLIPPY=1 "$top/scripts/build.sh" "$flavour" >"$build_log.vars" 2> >(tee "$build_log" >&2); then
	echo "check: build failed"
	echo "0 passed, 1 failed"
	exit 1
fi
vars=$(tail -n 1 "$build_log.vars")
. "$vars"
out=$BUILD/$flavour
if grep -q '^warning' "$build_log"; then
	grep -A12 '^warning' "$build_log"
	problems+=("the module build has rustc or clippy warnings")
else
	echo "ok: no rustc or clippy warnings"
fi
rm -f "$build_log" "$build_log.vars"

stage "host: cargo test (address parsing, UAPI numbers)"
if ! (cd "$top/af_bus" && CARGO_TARGET_DIR=$BUILD/host-target cargo test --quiet 2>&1); then
	problems+=("host unit tests failed")
fi

stage "host: afbusctl (tools/busctl): cargo test, clippy, its bloom scheme against the C helper, its man pages"
# The unit tests build with the profile, target and flags of build.sh's
# release build, in its target directory, so that they reuse its
# dependencies instead of compiling them a second time (45 s for
# afbus-dbus's on a fresh machine).
release_test() {
	(cd "$top/tools/$1" && RUSTFLAGS="-C target-feature=+crt-static" \
		CARGO_TARGET_DIR="$AF_BUS_CACHE/cargo-target/$2" \
		cargo test --quiet --locked --release --target x86_64-unknown-linux-gnu 2>&1)
}
busctl_host=$AF_BUS_CACHE/cargo-target/busctl-host
if release_test busctl busctl; then
	:
else
	problems+=("afbusctl's unit tests failed")
fi
if command -v cargo-clippy >/dev/null || cargo clippy --version >/dev/null 2>&1; then
	if ! (cd "$top/tools/busctl" && CARGO_TARGET_DIR=$busctl_host \
			cargo clippy --quiet --locked --all-targets -- -D warnings 2>&1); then
		problems+=("afbusctl has clippy warnings")
	fi
else
	echo "(cargo clippy is not installed here: skipped for afbusctl)"
fi
bloom_pairs=(interface=org.example.Echo member=Changed "path=/org/example/Echo" "k=v with spaces" x=)
if gcc -Wall -Wextra -Werror -o "$out/bus-bloom-host" "$top/examples/bus-bloom.c" &&
	[ "$("$out/bus-bloom-host" "${bloom_pairs[@]}")" = \
	  "$("$BUSCTL" bloom "${bloom_pairs[@]}" | grep '^bitmap:')" ]; then
	echo "ok: tools/busctl/bus-bloom.h and afbusctl compute the same bitmap"
else
	problems+=("bus-bloom.h and afbusctl disagree on the bloom scheme")
fi
rm -rf "$out/man" "$out/completions"
gen_ok=1
"$BUSCTL" generate man "$out/man" >/dev/null || gen_ok=0
for sh in bash zsh fish; do
	"$BUSCTL" generate completions "$sh" "$out/completions" >/dev/null || gen_ok=0
done
if [ "$gen_ok" = 1 ] && [ -s "$out/man/afbusctl.1" ]; then
	echo "ok: afbusctl's man pages and shell completions ($out/man, $out/completions)"
else
	problems+=("afbusctl could not generate its man pages or completions")
fi

stage "host: afbus-dbus (D-Bus on AF_BUS): cargo test, clippy"
dbus_host=$AF_BUS_CACHE/cargo-target/afbus-dbus-host
if ! release_test afbus-dbus afbus-dbus; then
	problems+=("afbus-dbus's unit tests failed")
fi
if ! (cd "$top/tools/afbus-dbus" && CARGO_TARGET_DIR=$dbus_host \
		cargo clippy --quiet --locked --all-targets -- -D warnings 2>&1); then
	problems+=("afbus-dbus has clippy warnings")
fi

stage "host: rustfmt (the kernel's .rustfmt.toml)"
if rustfmt --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" \
		"$top"/af_bus/*.rs "$top"/af_bus/core/*.rs "$top"/af_bus/sys/*.rs "$top"/af_bus/tests/*.rs "$top"/af_bus/fuzz/*.rs \
		"$top"/af_bus/fuzz/fuzz_targets/*.rs "$top"/tools/busctl/src/*.rs \
		"$top"/tools/afbus-dbus/src/*.rs "$top"/tools/afbus-dbus/examples/*.rs \
		"$top"/tests/dbus/*.rs; then
	echo "ok"
else
	problems+=("rustfmt would reformat the files above")
fi

stage "host: Documentation/af_bus.rst is valid reStructuredText"
if /usr/bin/python3 -c '
import sys, docutils.core
docutils.core.publish_string(open(sys.argv[1]).read(), writer_name="null",
                             settings_overrides={"halt_level": 2})
' "$top/Documentation/af_bus.rst"; then
	echo "ok"
else
	problems+=("Documentation/af_bus.rst does not parse")
fi

stage "host: include/uapi/linux/bus.h compiles alone as C and C++"
if gcc -std=c99 -Wall -Wextra -Werror -pedantic -I "$top/include/uapi" -fsyntax-only \
		-x c "$top/tests/uapi/bus_h.c" &&
	g++ -std=c++11 -Wall -Wextra -Werror -I "$top/include/uapi" -fsyntax-only \
		-x c++ "$top/tests/uapi/bus_h.c"; then
	echo "ok"
else
	problems+=("bus.h does not compile cleanly")
fi

stage "rig: a deliberate WARN and leak must fail the guest run"
if "$top/scripts/vm.sh" --kernel "$BZIMAGE" --timeout 300 \
		--add "$SPLAT_KO:/lib/modules/" -- insmod /lib/modules/af_bus_splat.ko \
		>"$out/splat.log" 2>&1; then
	problems+=("the guest runner did not notice a deliberate WARN")
elif grep -q "af_bus_splat: deliberate warning" "$out/splat.log" &&
	grep -A20 "unreferenced object" "$out/splat.log" | grep -q "do_init_module"; then
	echo "ok (the run failed on the WARN and on kmemleak's report, as it must)"
else
	cat "$out/splat.log"
	problems+=("the deliberate WARN and leak were not both reported")
fi

stage "guest: fault injection, short run (scripts/faults.sh --quick, debug kernel)"
fargs=(--quick)
[ "$flavour" != debug ] || fargs+=(--vars "$vars")
if "$top/scripts/faults.sh" "${fargs[@]}"; then
	echo "ok"
else
	problems+=("fault injection: a splat, a leak or an unclean errno (scripts/faults.sh --quick)")
fi

stage "guest: the benchmarks in smoke mode (tiny counts; figures not judged)"
if "$top/scripts/bench.sh" --smoke --vars "$vars" "$flavour" >"$out/bench-smoke.log" 2>&1; then
	tail -n 1 "$out/bench-smoke.log"
else
	tail -n 30 "$out/bench-smoke.log"
	problems+=("a benchmark program failed in smoke mode (log: $out/bench-smoke.log)")
fi

stage "guest: short stress and fuzz profile on the $flavour kernel"
# About a minute: a fixed seed, so that CI is reproducible; make stress
# runs the long profile with a fresh seed.
stress_seed=${STRESS_SEED:-1}
if "$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout 600 \
		--log "$out/stress-short-log" \
		--add "$STRESS/bus_stress" --add "$FUZZ/bus_fuzz" \
		--add "$top/scripts/guest-stress.sh:/usr/bin/" \
		-- sh /usr/bin/guest-stress.sh "$stress_seed" 25 15 4 3 \
		2>&1 | grep -aE '^bus_(stress|fuzz): |^vm: |FAIL'; then
	echo "ok (seed $stress_seed)"
else
	problems+=("the short stress/fuzz profile failed (seed $stress_seed; logs in $out/stress-short-log)")
fi

stage "guest: kselftests on the $flavour kernel"
adds=(--add "$top/scripts/guest-tests.sh:/usr/bin/" --add "$BUSCTL")
# D-Bus on AF_BUS: the master on PATH, its end-to-end test among the kselftests.
adds+=(--add "$AFBUS_DBUS" --add "$AFBUS_DBUS_TEST:/usr/libexec/af_bus/tests/bus_dbus")
# The bridge's legacy clients, from Debian's packages, with their libraries.
legacy=()
for p in dbus-send dbus-monitor gdbus dbus-test-tool; do
	legacy+=("$(command -v "$p")")
done
for p in "${legacy[@]}"; do
	adds+=(--add "$p")
done
mapfile -t libadds < <("$top/scripts/guest-libs.sh" "${legacy[@]}")
adds+=("${libadds[@]}")
for t in "$TESTS"/*; do
	adds+=(--add "$t:/usr/libexec/af_bus/tests/")
done
for e in "$EXAMPLES"/*; do
	adds+=(--add "$e:/usr/bin/")
done
mkdir -p "$out/log"
"$top/scripts/vm.sh" --kernel "$BZIMAGE" --module "$KO" --timeout "${TIMEOUT:-1500}" \
	--log "$out/log" "${adds[@]}" -- sh /usr/bin/guest-tests.sh
vm_rc=$?

passed=$(grep -acE '^ok [0-9]+ ' "$out/log/output.log")
failed=$(grep -acE '^not ok [0-9]+ ' "$out/log/output.log")
skipped=$(grep -acE '^ok [0-9]+ .*# SKIP' "$out/log/output.log")
passed=$((passed - skipped))
[ "$vm_rc" -eq 0 ] || problems+=("the guest run failed (exit $vm_rc; logs in $out/log)")
[ "$skipped" -eq 0 ] || problems+=("$skipped kselftests skipped")
[ $((passed + failed)) -gt 0 ] || problems+=("no kselftest ran")

echo
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do echo "check: $p"; done
	# A problem outside the kselftests still fails the run.
	[ "$failed" -gt 0 ] || failed=$((failed + ${#problems[@]}))
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi
echo "check: $((SECONDS - start)) s in all"
echo "$passed passed, $failed failed"
