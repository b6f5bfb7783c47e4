# SPDX-License-Identifier: GPL-2.0
#
# AF_BUS: build the module, boot it, test it.
#
#   make               build af_bus.ko (against KDIR, or the cached debug kernel)
#   make run           boot the guest with AF_BUS and play a session on a bus
#                      with afbusctl; at a terminal, then give a guest shell
#                      (NOSHELL=1: just the session)
#   make run PROG=/path/to/program ARGS='...'
#                      run your own program in the guest instead (static or
#                      dynamically linked: its libraries go with it), with
#                      a D-Bus bus on AF_BUS to talk to: the master, and the
#                      bridge at DBUS_SYSTEM_BUS_ADDRESS, e.g.
#                      make run PROG=/usr/bin/dbus-send ARGS='--system
#                      --print-reply --dest=org.freedesktop.DBus
#                      /org/freedesktop/DBus org.freedesktop.DBus.ListNames'
#   make check         host tests, then every kselftest in the debug guest
#   make bench         the benchmarks against AF_UNIX, a pipe and dbus-daemon,
#                      on the base kernel: a table, a CSV and a plot in
#                      bench-results/<UTC time>/ (REPS=7 SCALE=1 BENCH_GROUPS=
#                      BENCH_CASE=); PERF=1 profiles the groups with perf
#                      instead (perf.txt and perf.folded there); ICOUNT=1
#                      counts guest instructions (QEMU -icount) and judges
#                      the instruction targets; BOOTS=N pools N boots
#   make ring-bench    recvmsg versus the receive ring only (SCALE=N)
#   make dbus-conformance
#                      Debian's dbus-tests conformance programs against
#                      dbus-daemon and, in the same boot, through the
#                      afbus-dbus bridge to a bus on AF_BUS: a table of
#                      passed/failed/skipped subtests (a report, not a gate)
#   make faults        the kselftests and bus_faults with allocation failures
#                      injected (failslab, fail_page_alloc, fail_usercopy) on
#                      the debug kernel; FAULTS_ARGS='--iterations N --seed S
#                      --probability P --tests "bus_unicast ..."'
#   make stress        stress (bus_stress) then fuzz (bus_fuzz) on the debug
#                      kernel; SEED=, DURATION= (seconds, default 180)
#   make kcsan         the kselftests and the short stress/fuzz profile on
#                      the KCSAN kernel; fails on any data-race report
#                      (not part of make check: it builds a third kernel)
#   make clippy        build the module with CLIPPY=1
#   make kernel        only build (or find) the cached base and debug kernels
#   make clean         remove build/
#
# The first run installs what is missing (Debian packages, bindgen) and
# builds the patched kernel into ~/.cache/af_bus (AF_BUS_CACHE); later
# runs reuse it.  KDIR=/path/to/kernel/build uses a kernel you built.

SHELL := /bin/bash
top := $(CURDIR)
export BUILD ?= $(top)/build
TIMEOUT ?= 1500

ifeq ($(KDIR),)
FLAVOUR ?= debug
RUN_FLAVOUR ?= base
else
export KDIR
FLAVOUR := custom
RUN_FLAVOUR := custom
endif

.PHONY: all modules run check clippy kernel clean help bench ring-bench faults stress kcsan \
	dbus-conformance

all: modules

modules:
	@vars=$$(scripts/build.sh $(FLAVOUR)) && . $$vars && echo "built $$KO"

kernel:
	@scripts/kernel.sh base && scripts/kernel.sh debug

clippy:
	@rm -f $(BUILD)/$(FLAVOUR)/module/af_bus/*.o
	@out=$$(CLIPPY=1 scripts/build.sh $(FLAVOUR) 2>&1 >/dev/null) || { echo "$$out"; exit 1; }; \
	if echo "$$out" | grep -q '^warning'; then echo "$$out"; exit 1; fi; echo "clippy: clean"

run:
	@vars=$$(scripts/build.sh $(RUN_FLAVOUR)) && . $$vars && \
	dbus=(--add $$AFBUS_DBUS --add tools/afbus-dbus/demo-policy.toml:/etc/afbus-dbus/demo.toml); \
	if [ -n "$(PROG)" ]; then \
		mapfile -t libs < <(scripts/guest-libs.sh "$(PROG)"); \
		scripts/vm.sh --kernel $$BZIMAGE --module $$KO --timeout $(TIMEOUT) \
			--add "$(PROG):/usr/bin/" "$${libs[@]}" "$${dbus[@]}" \
			--add scripts/guest-prog.sh:/usr/bin/ \
			-- sh /usr/bin/guest-prog.sh "$$(basename $(PROG)) $(ARGS)"; \
	else \
		legacy=$$(command -v dbus-send); \
		mapfile -t libs < <(scripts/guest-libs.sh $$legacy); \
		guest=(--add $$BUSCTL --add scripts/demo.sh:/usr/bin/ \
			--add tools/busctl/demo-policy.toml:/etc/afbus/demo.toml \
			"$${dbus[@]}" --add $$AFBUS_DBUS_TEST \
			$${legacy:+--add $$legacy} "$${libs[@]}"); \
		for e in $$EXAMPLES/*; do guest+=(--add $$e); done; \
		if [ -t 0 ] && [ -t 1 ] && [ -z "$(NOSHELL)" ]; then \
			scripts/vm.sh --kernel $$BZIMAGE --module $$KO --interactive \
				"$${guest[@]}" -- sh /usr/bin/demo.sh --then-shell; \
		else \
			scripts/vm.sh --kernel $$BZIMAGE --module $$KO --timeout $(TIMEOUT) \
				"$${guest[@]}" -- sh /usr/bin/demo.sh; \
		fi; \
	fi

check:
	@scripts/check.sh $(FLAVOUR)

bench:
	@scripts/bench.sh $(RUN_FLAVOUR)

ring-bench:
	@vars=$$(scripts/build.sh $(RUN_FLAVOUR)) && . $$vars && \
	scripts/vm.sh --kernel $$BZIMAGE --module $$KO --timeout $(TIMEOUT) \
		--add $$BENCH/bus_bench -- bus_bench -s $(or $(SCALE),1) tput

faults:
	@scripts/faults.sh $(FAULTS_ARGS)

dbus-conformance:
	@scripts/dbus-conformance.sh $(FLAVOUR)

stress:
	@scripts/stress.sh $(FLAVOUR)

kcsan:
	@scripts/kcsan.sh

clean:
	rm -rf $(BUILD)

help:
	@sed -n '3,/^$$/p' Makefile | sed 's/^# \{0,1\}//'
