#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot a kernel in QEMU with AF_BUS loaded and run one command as root.
#
#   scripts/vm.sh [options] -- COMMAND [ARGS...]
#
#   --kernel BZIMAGE   kernel to boot (required)
#   --module KO        af_bus.ko to load before COMMAND
#   --add FILE[:DEST]  put FILE into the guest (default DEST /usr/bin/NAME)
#   --timeout SECONDS  kill the guest after this long (default 900)
#   --log DIR          keep console.log and output.log here
#   --interactive      run COMMAND (if any) on the console, then give a shell
#
# The exit status is COMMAND's.  It is 1 when the kernel log shows a
# splat (BUG, WARNING, KASAN, lockdep, kmemleak, panic), when af_bus does
# not unload after COMMAND, or when the guest times out.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"

kernel= module= timeout=900 logdir= interactive=0
adds=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--add) adds+=("$2"); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--log) logdir=$2; shift 2 ;;
	--interactive) interactive=1; shift ;;
	--) shift; break ;;
	*) echo "vm.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -n "$kernel" ] || { echo "vm.sh: --kernel is required" >&2; exit 2; }
[ $# -gt 0 ] || [ $interactive -eq 1 ] || { echo "vm.sh: no command" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/af_bus-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -n "$logdir" ] || logdir=$work
mkdir -p "$logdir"

# The initramfs, as a gen_init_cpio list: no root privileges needed.
kbuild=$(cd "$(dirname "$kernel")/../../.." && pwd)
gen_init_cpio=$kbuild/usr/gen_init_cpio
[ -x "$gen_init_cpio" ] || { echo "vm.sh: $gen_init_cpio missing (kernel built without initramfs support?)" >&2; exit 2; }
{
	for d in /bin /sbin /usr /usr/bin /usr/local /usr/local/bin /lib /lib/modules \
		/proc /sys /dev /tmp /etc /root /var /run /share; do
		echo "dir $d 0755 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	echo "file /bin/busybox $(command -v busybox) 0755 0 0"
	echo "file /init $top/scripts/guest-init 0755 0 0"
	echo "file /etc/passwd $work/passwd 0644 0 0"
	echo "file /etc/group $work/group 0644 0 0"
	[ -z "$module" ] || echo "file /lib/modules/af_bus.ko $module 0644 0 0"
	for a in "${adds[@]}"; do
		src=${a%%:*}
		dst=${a#*:}
		[ "$dst" != "$a" ] || dst=/usr/bin/$(basename "$src")
		case "$dst" in
		*/) dst=$dst$(basename "$src") ;;
		esac
		mode=0644
		[ ! -x "$src" ] || mode=0755
		# Parent directories first (gen_init_cpio makes none itself).
		d=$(dirname "$dst")
		parents=()
		while [ "$d" != / ]; do
			parents=("$d" "${parents[@]}")
			d=$(dirname "$d")
		done
		for d in "${parents[@]}"; do
			echo "dir $d 0755 0 0"
		done
		echo "file $dst $(readlink -f "$src") $mode 0 0"
	done
	if [ $interactive -eq 1 ]; then
		echo "file /interactive /dev/null 0644 0 0"
	fi
	echo "file /run.sh $work/run.sh 0755 0 0"
} >"$work/initramfs.list"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$work/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/group"
{
	echo "#!/bin/sh"
	printf '%q ' "$@"
	echo
} >"$work/run.sh"
"$gen_init_cpio" "$work/initramfs.list" | gzip -1 >"$work/initramfs.gz"

# KVM only when it answers: nested virtualisation hangs on some hosts, so
# probe once per host boot and remember the answer.
accel=tcg
if [ -w /dev/kvm ] && [ "${AF_BUS_ACCEL:-auto}" != tcg ]; then
	probe=$AF_BUS_CACHE/kvm-probe-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
	if [ ! -f "$probe" ]; then
		timeout 20 qemu-system-x86_64 -accel kvm -m 256 -nographic -no-reboot \
			-kernel "$kernel" -append "console=ttyS0 panic=-1 rdinit=/nonexistent" \
			-serial file:"$work/kvm-probe.log" -monitor none >/dev/null 2>&1 || true
		if grep -q "Linux version" "$work/kvm-probe.log" 2>/dev/null; then
			echo kvm >"$probe"
		else
			echo tcg >"$probe"
		fi
	fi
	accel=$(cat "$probe")
fi
[ "${AF_BUS_ACCEL:-auto}" = auto ] || accel=$AF_BUS_ACCEL

cmdline="console=ttyS0 panic=-1 loglevel=7 nokaslr"
# A person at the console wants the demo and a prompt, not boot chatter.
[ $interactive -eq 0 ] || cmdline="console=ttyS0 panic=-1 loglevel=3 nokaslr"
qemu=(qemu-system-x86_64 -accel "$accel" -smp 2 -m "${AF_BUS_GUEST_MEM:-1G}"
	-kernel "$kernel" -initrd "$work/initramfs.gz" -no-reboot -nographic
	-append "$cmdline" -monitor none)
if [ "$accel" = tcg ]; then
	qemu+=(-cpu max)
fi
# More QEMU arguments, as words (make bench ICOUNT=1 adds -icount).
if [ -n "${AF_BUS_QEMU_ARGS:-}" ]; then
	read -r -a extra <<<"$AF_BUS_QEMU_ARGS"
	qemu+=("${extra[@]}")
fi

: >"$logdir/console.log"
: >"$logdir/output.log"
if [ $interactive -eq 1 ]; then
	qemu+=(-serial mon:stdio -serial file:"$logdir/output.log")
	"${qemu[@]}" || true
	exit 0
fi

qemu+=(-serial file:"$logdir/console.log" -serial file:"$logdir/output.log")
tail -n +1 -F "$logdir/output.log" 2>/dev/null | sed -u '/^AFBUS-RESULT /d' &
tailer=$!
status=0
timeout --foreground -k 10 "$timeout" "${qemu[@]}" </dev/null >"$logdir/qemu.log" 2>&1 || status=$?
sleep 0.5
kill $tailer 2>/dev/null || true
wait $tailer 2>/dev/null || true

if [ $status -eq 124 ] || [ $status -eq 137 ]; then
	echo "vm: guest timed out after $timeout s; last console lines:" >&2
	tail -n 40 "$logdir/console.log" >&2
	exit 1
fi

result=$(grep -a '^AFBUS-RESULT ' "$logdir/output.log" | tail -n 1 | tr -d '\r' || true)
if [ -z "$result" ]; then
	echo "vm: the guest ended without a result (crash?); last console lines:" >&2
	tail -n 60 "$logdir/console.log" >&2
	cat "$logdir/qemu.log" >&2
	exit 1
fi

splat='BUG:|WARNING:|KASAN:|UBSAN:|kernel BUG at|Oops|general protection fault|Kernel panic|possible circular locking|possible recursive locking|inconsistent lock state|possible irq lock inversion|suspicious RCU usage|unreferenced object|blocked for more than|rust_panic|panicked at|DEBUG_LOCKS_WARN_ON|Call Trace:'
if grep -aEq "$splat" "$logdir/console.log"; then
	echo "vm: the kernel log shows a splat:" >&2
	grep -aE -B2 -A30 "$splat" "$logdir/console.log" | head -n 200 >&2
	exit 1
fi

rc=${result#*rc=}
rc=${rc%% *}
case "$rc" in
0) ;;
124 | 125) echo "vm: ${result#AFBUS-RESULT }" >&2 ;;
*) echo "vm: the command exited with status $rc" >&2 ;;
esac
exit "$rc"
