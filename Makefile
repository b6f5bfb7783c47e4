# SPDX-License-Identifier: GPL-2.0
#
# AF_BUS: build the module, boot it, test it.
#
#   make               build af_bus.ko (against KDIR, or the cached debug kernel)
#   make run           boot the guest with AF_BUS and show it working
#   make run PROG=/path/to/static-binary ARGS='...'
#                      run your own program in the guest instead
#   make check         host tests, then every kselftest in the debug guest
#   make ring-bench    recvmsg versus the receive ring, on the base kernel
#   make stress        stress (bus_stress) then fuzz (bus_fuzz) on the debug
#                      kernel; SEED=, DURATION= (seconds, default 180)
#   make clippy        build the module with CLIPPY=1
#   make kernel        only build (or find) the cached kernels
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

.PHONY: all modules run check clippy kernel clean help ring-bench stress

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
	if [ -n "$(PROG)" ]; then \
		scripts/vm.sh --kernel $$BZIMAGE --module $$KO --timeout $(TIMEOUT) \
			--add "$(PROG):/usr/bin/" -- sh -c "$$(basename $(PROG)) $(ARGS)"; \
	else \
		scripts/vm.sh --kernel $$BZIMAGE --module $$KO --timeout $(TIMEOUT) \
			--add $$EXAMPLES/bus-demo --add $$EXAMPLES/readme-example \
			--add scripts/demo.sh:/usr/bin/ \
			-- sh /usr/bin/demo.sh; \
	fi

check:
	@scripts/check.sh $(FLAVOUR)

ring-bench:
	@vars=$$(scripts/build.sh $(RUN_FLAVOUR)) && . $$vars && \
	scripts/vm.sh --kernel $$BZIMAGE --module $$KO --timeout $(TIMEOUT) \
		--add $$BENCH/bus_ring_bench -- bus_ring_bench $(SCALE)

stress:
	@scripts/stress.sh $(FLAVOUR)

clean:
	rm -rf $(BUILD)

help:
	@sed -n '3,20p' Makefile | sed 's/^# \{0,1\}//'
