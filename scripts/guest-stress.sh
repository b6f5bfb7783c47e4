#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the guest: the stress run, then the syscall fuzzer, with the
# same seed.  A kernel splat or leak fails the run in vm.sh anyway.
#
#   guest-stress.sh SEED STRESS_SECONDS FUZZ_SECONDS [WORKERS] [FUZZ_THREADS]

seed=${1:?seed}
stress_s=${2:?stress seconds}
fuzz_s=${3:?fuzz seconds}
workers=${4:-4}
threads=${5:-3}
rc=0
echo "# af_bus: bus_stress -s $seed -d $stress_s -w $workers"
bus_stress -s "$seed" -d "$stress_s" -w "$workers" || rc=1
echo "# af_bus: bus_fuzz -s $seed -d $fuzz_s -t $threads"
bus_fuzz -s "$seed" -d "$fuzz_s" -n 100000000 -t "$threads" || rc=1
echo "# af_bus: /proc/net/bus after the runs:"
cat /proc/net/bus
exit $rc
