#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run inside the guest by scripts/faults.sh: kselftests and bus_faults
# with allocation failures injected into the test processes only
# (task-filter, /proc/self/make-it-fail set by a wrapper before exec).
#
#   guest-faults.sh MODE PROBABILITY ITERATIONS SEED TIMEOUT SWEEP [TEST...]
#
# MODE module:   failslab and fail_page_alloc fail allocations made with
#                af_bus.ko's text on the stack (require-start/-end);
#                then bus_faults -n sweeps the first SWEEP calls of
#                each of its operations (fail-nth), user copies too.
# MODE anywhere: any allocation of the test processes fails, and user
#                copies too (fail_usercopy); vmalloc is left alone, as it
#                warns by design when a caller without __GFP_NOWARN
#                (fork's stack) fails.
#
# Prints one "# faults:" line per program and a FAULTS-RESULT line.

mode=$1 prob=$2 iters=$3 seed=$4 tlimit=$5 nth=$6
shift 6
dbg=/sys/kernel/debug
big=1000000000
space=1048576
tests=/usr/libexec/af_bus/tests
rc=0
range=

# The address range of a function: its address and the next symbol's.
sym_range() {
	sort /proc/kallsyms | awk -v f="$1" '
		found { print "0x" $1; exit }
		$3 == f { printf "0x%s ", $1; found = 1 }'
}

configure() {
	for f in failslab fail_page_alloc fail_usercopy; do
		d=$dbg/$f
		[ -d $d ] || { echo "# faults: $d missing"; exit 2; }
		echo 0 >$d/probability
		echo Y >$d/task-filter
		echo 1 >$d/interval
		echo $big >$d/times
		echo 0 >$d/space
		echo 0 >$d/verbose
		echo 32 >$d/stacktrace-depth
		echo 0 >$d/require-start
		echo 0xffffffffffffffff >$d/require-end
		echo 0 >$d/reject-start
		echo 0 >$d/reject-end
		[ ! -e $d/ignore-gfp-wait ] || echo N >$d/ignore-gfp-wait
		[ ! -e $d/ignore-gfp-highmem ] || echo N >$d/ignore-gfp-highmem
		[ ! -e $d/min-order ] || echo 0 >$d/min-order
	done
	case $mode in
	module)
		module_range
		for f in failslab fail_page_alloc; do
			echo $prob >$dbg/$f/probability
		done
		;;
	anywhere)
		set -- $(sym_range __vmalloc_node_range_noprof)
		echo "# faults: mode anywhere, vmalloc ($1..$2) excluded"
		for f in failslab fail_page_alloc; do
			echo $1 >$dbg/$f/reject-start
			echo $2 >$dbg/$f/reject-end
			echo $prob >$dbg/$f/probability
		done
		echo $prob >$dbg/fail_usercopy/probability
		;;
	*)
		echo "# faults: unknown mode $mode"
		exit 2
		;;
	esac
}

# Limits module mode to af_bus.ko's text, wherever it is loaded now (a
# test may have unloaded and loaded it again).
module_range() {
	[ -e /sys/module/af_bus ] || insmod /lib/modules/af_bus.ko
	start=$(cat /sys/module/af_bus/sections/.text)
	# The last text symbol (modules live in the top 2 GiB, so the
	# high half of the address is all ones); its length is unknown:
	# one page past its start.
	set -- $(sort /proc/kallsyms | awk '$4 == "[af_bus]" && ($2 == "t" || $2 == "T") { a = $1 }
		END { print substr(a, 1, 8), substr(a, 9) }')
	end=$(printf '0x%s%08x' $1 $((0x$2 + 4096)))
	[ "$start..$end" = "$range" ] || echo "# faults: mode module, af_bus text $start..$end"
	range=$start..$end
	for f in failslab fail_page_alloc fail_usercopy; do
		echo $start >$dbg/$f/require-start
		echo $end >$dbg/$f/require-end
	done
}

# Tests left out under injection: loading af_bus.ko again runs its init,
# where a failing kmem_cache_create() (proto_register) dumps a stack by
# design; loading modules is root's business, not an attack.
excluded() {
	case $1 in
	bus_family) echo "-T rmmod_after_close_then_reload" ;;
	esac
}

injected() {
	n=0
	for f in failslab fail_page_alloc fail_usercopy; do
		n=$((n + big - $(cat $dbg/$f/times)))
	done
	echo $n
}

# Kills whatever a test left behind (only the test processes fail).
reap() {
	for p in /proc/[0-9]*; do
		[ "$(cat $p/make-it-fail 2>/dev/null)" = 1 ] && kill -9 ${p#/proc/} 2>/dev/null
	done
	sleep 1
}

# copy_pid_ns() creates the slab cache of a pid namespace level the first
# time a namespace of that level is made, and a kmem_cache_create() that
# fails under injection dumps a stack and leaks the cache's name, by
# design and outside AF_BUS: make the level bus_scm uses beforehand.
unshare -p -f true || echo "# faults: could not make a pid namespace beforehand"

configure
t0=$(date +%s)
for t in "$@"; do
	[ -x $tests/$t ] || { echo "# faults: no test $t"; rc=1; continue; }
	before=$(injected)
	# Until the harness starts (an exec that fails under injection
	# is tried again), and in anywhere mode with the first bytes the
	# test processes allocate spared, so that exec mostly works.
	[ $mode = module ] && module_range
	tries=0
	while [ $tries -lt 20 ]; do
		tries=$((tries + 1))
		if [ $mode = anywhere ]; then
			for f in failslab fail_page_alloc fail_usercopy; do
				echo $space >$dbg/$f/space
			done
		fi
		timeout $tlimit sh -c 'echo 1 >/proc/self/make-it-fail; exec "$0" "$@"' \
			$tests/$t $(excluded $t) >/tmp/faults.out 2>&1
		trc=$?
		reap
		grep -q '^TAP version' /tmp/faults.out && break
	done
	for f in failslab fail_page_alloc fail_usercopy; do
		echo 0 >$dbg/$f/space
	done
	ok=$(grep -c '^ok ' /tmp/faults.out)
	nok=$(grep -c '^not ok ' /tmp/faults.out)
	echo "# faults: $t: $ok passed, $nok failed under injection (exit $trc, $tries start(s)), $(($(injected) - before)) failures injected"
done
before=$(injected)
uflag=
[ $mode = anywhere ] && uflag=-u
bus_faults -i $iters -s $seed $uflag || rc=1
reap
echo "# faults: bus_faults: $(($(injected) - before)) failures injected"
if [ $mode = module ]; then
	# The sweep: iteration k fails the k-th call of each operation.
	bus_faults -n -i $nth -s $seed || rc=1
fi
for f in failslab fail_page_alloc fail_usercopy; do
	echo 0 >$dbg/$f/probability
done
echo "FAULTS-RESULT mode=$mode probability=$prob seed=$seed injected=$(injected) seconds=$(($(date +%s) - t0)) rc=$rc"
exit $rc
