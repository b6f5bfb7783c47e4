#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the guest: the stress run, then the syscall fuzzer, with the
# same seed.  A kernel splat or leak fails the run in vm.sh anyway.
#
#   guest-stress.sh SEED STRESS_SECONDS FUZZ_SECONDS [WORKERS] [FUZZ_THREADS] [ATTACKS]
#
# ATTACKS: bus_stress -a (peek,bind,stall,revoke or none); default all.
# none also runs bus_fuzz -x (without its attack operations).

seed=${1:?seed}
stress_s=${2:?stress seconds}
fuzz_s=${3:?fuzz seconds}
workers=${4:-4}
threads=${5:-3}
attacks=${6:-all}
rc=0
set -- -s "$seed" -d "$stress_s" -w "$workers"
[ "$attacks" = all ] || set -- "$@" -a "$attacks"
echo "# af_bus: bus_stress $*"
bus_stress "$@" || rc=1
set -- -s "$seed" -d "$fuzz_s" -n 100000000 -t "$threads"
[ "$attacks" != none ] || set -- "$@" -x
echo "# af_bus: bus_fuzz $*"
bus_fuzz "$@" || rc=1
echo "# af_bus: /proc/net/bus after the runs:"
cat /proc/net/bus
exit $rc
