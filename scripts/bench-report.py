#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# The report of a benchmark run: reads results.csv (scripts/bench.sh),
# prints the tables and the targets with PASS or MISS, and draws
# plot.svg with gnuplot into the results folder.  A figure measured in
# several boots is pooled: the median of the boots' medians, the lowest
# min, the highest max.  With BENCH_ICOUNT=1 in the environment (make
# bench ICOUNT=1: guest time counts guest instructions), it also prints
# instructions per operation against the targets, each judged in
# three states (see icount_report).
#
#   bench-report.py RESULTS.CSV OUTDIR

import csv
import os
import subprocess
import sys

boots = {}
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        key = (r["group"], r["case"], r["config"], int(r["param"]), r["metric"])
        boots.setdefault(key, []).append((float(r["median"]), float(r["min"]), float(r["max"])))


def pooled(runs):
    meds = sorted(m for m, _, _ in runs)
    n = len(meds)
    med = meds[n // 2] if n % 2 else (meds[n // 2 - 1] + meds[n // 2]) / 2
    return (med, min(lo for _, lo, _ in runs), max(hi for _, _, hi in runs))


rows = {k: pooled(v) for k, v in boots.items()}
nboots = max((len(v) for v in boots.values()), default=0)
outdir = sys.argv[2]


def get(group, case, config, param, metric):
    return rows.get((group, case, config, param, metric))


def num(x):
    if x >= 10000:
        return "%.0fk" % (x / 1000)
    return "%.0f" % x if x >= 100 else "%.3g" % x


def cell(v, width=25):
    if v is None:
        return "-".rjust(width)
    m, lo, hi = v
    return (" %s [%s..%s]" % (num(m), num(lo), num(hi))).rjust(width)


def table(title, head, lines):
    print(title)
    print("  " + "".join((" " + h).rjust(25) if i else h.ljust(12) for i, h in enumerate(head)))
    for line in lines:
        print("  " + line[0].ljust(12) + "".join(cell(v) for v in line[1:]))
    print()


targets = []


def target(what, ratio, want, ok, spread=None):
    if ratio is None:
        targets.append("  %-66s  no figure" % what)
        return
    sp = " [%.2f..%.2f]" % spread if spread else ""
    targets.append("  %-66s %6.2fx%s (want %s)  %s" % (what, ratio, sp, want,
                                                      "PASS" if ok else "MISS"))


def ratio_target(what, row, want, ok):
    """A target on a ratio measured round by round (median [min..max])."""
    if row is None:
        target(what, None, want, False)
        return
    target(what, row[0], want, ok(row[0]), (row[1], row[2]))


SIZE = {64: "64 B", 4096: "4 KiB", 65536: "64 KiB"}
CONFIGS = ("2cpu", "1cpu")

# Unicast round trip.
rtt_cases = ("af_bus", "unix_dgram", "unix_seqpacket", "pipe", "dbus_daemon")
lines = []
for size in (64, 4096):
    for cfg in CONFIGS + ("1cpu-threads",):
        lines.append(["%s %s" % (SIZE[size], cfg)] +
                     [get("rtt", c, cfg, size, "rtt") for c in rtt_cases])
table("Unicast round trip, us (lower is better; 1cpu: both ends on CPU 0, 2cpu: CPU 0 and 1, "
      "1cpu-threads: both ends threads of one process on CPU 0; "
      "dbus_daemon: its daemon on CPU 0 in 1cpu, free in 2cpu)",
      ["size config"] + list(rtt_cases), lines)
for size in (64, 4096):
    for cfg in CONFIGS:
        ratio_target("AF_BUS round trip %s %s within 1.15x of AF_UNIX SOCK_DGRAM" % (SIZE[size], cfg),
                     get("rtt", "af_bus_over_unix_dgram", cfg, size, "ratio"), "<= 1.15x",
                     lambda r: r <= 1.15)
for size in (64, 4096):
    row = get("rtt", "af_bus_over_unix_dgram", "1cpu-threads", size, "ratio")
    if row:
        targets.append("  %-66s %6.2fx [%.2f..%.2f] (information)" % (
            "AF_BUS round trip %s 1cpu, ends as threads, over AF_UNIX" % SIZE[size],
            row[0], row[1], row[2]))
for size in (64, 4096):
    for cfg in CONFIGS:
        b, d = get("rtt", "af_bus", cfg, size, "rtt"), get("rtt", "dbus_daemon", cfg, size, "rtt")
        r = d[0] / b[0] if b and d else None
        target("AF_BUS round trip %s %s at least 20x faster than dbus-daemon" % (SIZE[size], cfg),
               r, ">= 20x", r is not None and r >= 20)

# The same code paths without scheduling (a send and its receive in one
# thread): information, to tell the code's cost from the wake-ups'.
path_cases = ("af_bus", "unix_dgram", "unix_seqpacket", "pipe")
lines = [["%s 1cpu" % SIZE[size]] + [get("path", c, "1cpu", size, "send_recv") for c in path_cases]
         for size in (64, 4096)]
if any(x is not None for line in lines for x in line[1:]):
    table("Send and receive in one thread, us (no wake-up, no context switch: the code paths alone)",
          ["size config"] + list(path_cases), lines)
    for size in (64, 4096):
        row = get("path", "af_bus_over_unix_dgram", "1cpu", size, "ratio")
        if row:
            targets.append("  %-66s %6.2fx [%.2f..%.2f] (information)" % (
                "AF_BUS send+receive in one thread %s over AF_UNIX SOCK_DGRAM" % SIZE[size],
                row[0], row[1], row[2]))

# Throughput.
tput_cases = ("af_bus_recvmsg", "af_bus_ring", "unix_dgram")
lines = []
for size in (64, 4096, 65536):
    for cfg in CONFIGS:
        line = ["%s %s" % (SIZE[size], cfg)]
        for c in tput_cases:
            line.append(get("tput", c, cfg, size, "rate"))
        for c in tput_cases:
            line.append(get("tput", c, cfg, size, "cpu"))
        lines.append(line)
table("One-way throughput: msg/s (higher is better), then busy CPU us per message "
      "(2cpu: sender CPU 0, receiver CPU 1; 1cpu: both on CPU 0)",
      ["size config", "recvmsg msg/s", "ring msg/s", "unix msg/s", "recvmsg cpu", "ring cpu",
       "unix cpu"],
      lines)
for cfg in CONFIGS:
    ratio_target("ring throughput at 64 KiB %s at least 1.5x recvmsg" % cfg,
                 get("tput", "ring_over_recvmsg", cfg, 65536, "ratio"), ">= 1.5x",
                 lambda r: r >= 1.5)
    ring, rx = get("tput", "af_bus_ring", cfg, 65536, "cpu"), get("tput", "af_bus_recvmsg", cfg, 65536, "cpu")
    r = rx[0] / ring[0] if ring and rx else None
    targets.append("  %-66s %6.2fx (information)" % (
        "recvmsg CPU per 64 KiB message over the ring's, %s" % cfg, r or 0))

lines = []
for size in (64, 4096, 65536):
    for cfg in CONFIGS:
        lines.append(["%s %s" % (SIZE[size], cfg)] +
                     [get("tput", c, cfg, size, "ctxsw") for c in tput_cases])
if any(x is not None for line in lines for x in line[1:]):
    table("Context switches per message of the throughput runs (all CPUs, /proc/stat ctxt)",
          ["size config", "recvmsg", "ring", "unix"], lines)

# A service and K clients.
lines = [["%d clients" % k, get("svc", "af_bus", "free", k, "call"),
          get("svc", "unix_dgram", "free", k, "call"),
          get("svc", "af_bus_over_unix_dgram", "free", k, "ratio")] for k in (1, 4, 16)]
if any(x is not None for line in lines for x in line[1:]):
    table("A service answering K clients at once, each reply to recvfrom's source: us per call "
          "(all clients together), then AF_BUS over AF_UNIX round by round",
          ["clients", "af_bus", "unix_dgram", "ratio"], lines)

# Multicast.
mc_cases = ("af_bus", "unix_dgram_n_sends", "dbus_daemon_signal")
lines = []
for n in (1, 8, 64):
    lines.append(["%d rx" % n] + [get("mcast", c, "2cpu", n, "delivered") for c in mc_cases] +
                 [get("mcast", c, "2cpu", n, "cpu") for c in mc_cases])
table("Multicast fan-out, 64 B: delivered msg/s, then busy CPU us per delivered message "
      "(sender CPU 0, receivers CPU 1)",
      ["receivers"] + ["af_bus msg/s", "unix_n_sends msg/s", "dbus_signal msg/s",
                       "af_bus cpu", "unix_n_sends cpu", "dbus_signal cpu"], lines)
lines = []
for n in (1, 8, 64):
    lines.append(["%d rx, %d match" % (n, (n + 3) // 4)] +
                 [get("mcast", c, "some", n, "delivered") for c in mc_cases[:2]] +
                 [get("mcast", c, "some", n, "cpu") for c in mc_cases[:2]] +
                 [get("mcast", "af_bus_over_unix_cpu", "some", n, "ratio")])
if any(x is not None for line in lines for x in line[1:]):
    table("Multicast fan-out where a quarter of the receivers match (the others' rules miss by "
          "one bit), against AF_UNIX sends to the matching ones only: delivered msg/s, busy "
          "CPU us per delivered message, AF_BUS over AF_UNIX CPU round by round",
          ["receivers"] + ["af_bus msg/s", "unix_n_sends msg/s", "af_bus cpu",
                           "unix_n_sends cpu", "cpu ratio"], lines)
ratio_target("one AF_BUS multicast to 64 receivers cheaper than 64 AF_UNIX sends (CPU)",
             get("mcast", "af_bus_over_unix_cpu", "2cpu", 64, "ratio"), "< 1x",
             lambda r: r < 1)

# Match scaling.
lines = []
for g in (0, 100, 1000, 10000):
    lines.append(["%d" % g, get("match", "af_bus", "bloom4", g, "send"),
                  get("match", "af_bus", "lowbit", g, "send"),
                  get("match", "af_bus", "dbus", g, "send")])
table("Match scaling: the sender's time per multicast, us, with N non-matching grants "
      "(bloom4: 4 random bits of 512; lowbit: every grant filed under the message's lowest bit; "
      "dbus: afbus-dbus rules on one interface and member, one object path each)",
      ["grants", "bloom4", "lowbit", "dbus"], lines)
ratio_target("10,000 non-matching grants (bloom4) add at most 10% to a multicast",
             get("match", "grants_10000_over_0", "bloom4", 10000, "ratio"), "<= 1.10x",
             lambda r: r <= 1.10)
r = get("match", "grants_10000_over_0", "lowbit", 10000, "ratio")
if r:
    targets.append("  %-66s %6.2fx [%.2f..%.2f] (information: adversarial masks)" % (
        "10,000 non-matching grants (lowbit) over none", r[0], r[1], r[2]))
r = get("match", "grants_10000_over_0", "dbus", 10000, "ratio")
if r:
    targets.append("  %-66s %6.2fx [%.2f..%.2f] (information)" % (
        "10,000 non-matching D-Bus-shaped grants over none", r[0], r[1], r[2]))

lines = [["member", get("mem", "af_bus", "kernel", 400, "member"),
          get("mem", "unix_dgram", "kernel", 400, "member")],
         ["match grant", get("mem", "af_bus", "kernel", 10000, "grant"), None],
         ["queued 64 B", get("mem", "af_bus", "kernel", 64, "queued"),
          get("mem", "unix_dgram", "kernel", 64, "queued")]]
if any(x is not None for line in lines for x in line[1:]):
    table("Memory, bytes (the fall of MemFree over 400 members or sockets, 10,000 D-Bus-shaped "
          "match grants, 4,800 queued messages)", ["per", "af_bus", "unix_dgram"], lines)

lines = [["join", get("join", "af_bus", "2cpu", 0, "join")]]
table("Joining: first sendmsg to holding a granted address, us (master on CPU 1)",
      ["", "af_bus"], lines)

# The same-library D-Bus group (zbus on every side).
zcases = ("zbus_afbus", "zbus_dbus_daemon", "zbus_dbus_broker", "zbus_bridge")
if any(get("dbus", c, "free", 64, "rtt") for c in zcases):
    broker = get("dbus", "zbus_dbus_broker", "free", 64, "rtt") is not None
    lines = [["%s call" % SIZE[size]] + [get("dbus", c, "free", size, "rtt") for c in zcases]
             for size in (64, 4096)]
    lines.append(["16 clients"] + [get("dbus16", c, "free", 16, "rate") for c in zcases])
    lines.append(["mem/client"] + [get("dbusmem", c, "free", 32, "bytes") for c in zcases])
    table("D-Bus, zbus on every side: method call + reply, us (lower is better); 16 clients "
          "calling at once, calls/s; bytes per connected client (the bus's processes' RSS and "
          "the kernel's slab, 32 idle clients); bridge is a stream-transport client "
          "(as libdbus, GDBus, sd-bus) through the bridge to the service on AF_BUS",
          ["", "AF_BUS direct", "dbus-daemon", "dbus-broker", "bridge"], lines)
    scases = ("zbus_afbus", "zbus_dbus_daemon", "zbus_dbus_broker")
    lines = [["%d subs" % n] + [get("dbussig", c, "free", n, "latency") for c in scases]
             for n in (1, 10, 100)]
    table("D-Bus signal to N subscribers of which every other one matches (arg0), from "
          "emission to arrival at every matching one, us",
          ["", "AF_BUS", "dbus-daemon", "dbus-broker"], lines)
    for n in (1, 10, 100):
        for other in ("dbus_daemon", "dbus_broker"):
            r = get("dbussig", "afbus_speedup_over_" + other, "free", n, "ratio")
            if r:
                targets.append("  %-66s %6.2fx [%.2f..%.2f] (information)" % (
                    "signal to %d subscribers: %s over AF_BUS" % (n, other.replace("_", "-")), *r))
    for size in (64, 4096):
        r = get("dbus", "afbus_speedup_over_daemon", "free", size, "ratio")
        if r:
            targets.append("  %-66s %6.2fx [%.2f..%.2f] (information)" % (
                "zbus call %s: through dbus-daemon over AF_BUS direct" % SIZE[size], *r))
        what = "zbus call %s at least 3x faster over AF_BUS than through dbus-broker" % SIZE[size]
        r = get("dbus", "afbus_speedup_over_broker", "free", size, "ratio")
        if r:
            verdict = "PASS" if r[1] >= 3 else "MISS" if r[2] < 3 else "INCONCLUSIVE"
            targets.append("  %-66s %6.2fx [%.2f..%.2f] (want >= 3x)  %s" % (what, *r, verdict))
        elif not broker:
            targets.append("  %-66s  NOT JUDGED (%s)" % (
                what, "no dbus-broker in this run: apt-get download dbus-broker failed"))
        r = get("dbus", "bridge_over_daemon", "free", size, "ratio")
        if r:
            verdict = "PASS" if r[2] <= 1.10 else "MISS" if r[1] > 1.10 else "INCONCLUSIVE"
            targets.append("  %-66s %6.2fx [%.2f..%.2f] (want <= 1.10x)  %s" % (
                "stream client %s through the bridge over through dbus-daemon" % SIZE[size],
                r[0], r[1], r[2], verdict))

print("Targets")
print("\n".join(targets))
print()


def icount_report():
    """Guest instructions per operation (ICOUNT=1: 1 ns of guest time is
    one instruction of either vCPU), against AF_UNIX SOCK_DGRAM of the
    same boot.  Each ratio is judged from its interval: a ratio measured
    round by round gives [min..max] of its rounds (with 7 rounds, a 98%
    interval for the median; pooled over boots, wider); otherwise the
    interval is AF_BUS's [min..max] over AF_UNIX's [max..min].  PASS only
    if the target holds at the unfavourable end, MISS only if it fails at
    the favourable end, INCONCLUSIVE otherwise."""
    print("Guest instructions per operation (QEMU -icount shift=0: what either vCPU executed, "
          "kernel and user, idle excluded; %d boot(s))" % nboots)
    verdicts = []

    def judge(what, iv, want, le):
        if iv is None:
            verdicts.append("  %-70s  no figure" % what)
            return
        mid, lo, hi = iv
        if le:
            v = "PASS" if hi <= want else "MISS" if lo > want else "INCONCLUSIVE"
            w = "<= %.2fx" % want
        else:
            v = "PASS" if lo >= want else "MISS" if hi < want else "INCONCLUSIVE"
            w = ">= %.2fx" % want
        verdicts.append("  %-70s %6.2fx [%.2f..%.2f] (want %s)  %s" % (what, mid, lo, hi, w, v))

    def over(a, b):
        """The interval of a / b from two [median, min, max]."""
        if a is None or b is None or min(b) <= 0:
            return None
        return (a[0] / b[0], a[1] / b[2], a[2] / b[1])

    def inv(v, k):
        """k / v (a rate to instructions per item), interval swapped."""
        if v is None or min(v) <= 0:
            return None
        return (k / v[0], k / v[2], k / v[1])

    def scale(v, k):
        return None if v is None else tuple(x * k for x in v)

    lines = []
    for size in (64, 4096):
        for cfg in CONFIGS + ("1cpu-threads",):
            b = scale(get("rtt", "af_bus", cfg, size, "rtt"), 1000)
            u = scale(get("rtt", "unix_dgram", cfg, size, "rtt"), 1000)
            lines.append(["rtt %s %s" % (SIZE[size], cfg), b, u])
            judge("round trip %s %s (%s)" % (SIZE[size], cfg,
                                             "threads" if "threads" in cfg else "processes"),
                  get("rtt", "af_bus_over_unix_dgram", cfg, size, "ratio"), 1.05, True)
        if size == 64:
            for k in (1, 4, 16):
                b = scale(get("svc", "af_bus", "free", k, "call"), 1000)
                u = scale(get("svc", "unix_dgram", "free", k, "call"), 1000)
                lines.append(["svc %d clients" % k, b, u])
                judge("service with %d client(s), replies to the source" % k,
                      get("svc", "af_bus_over_unix_dgram", "free", k, "ratio"), 1.05, True)
        b = scale(get("path", "af_bus", "1cpu", size, "send_recv"), 1000)
        u = scale(get("path", "unix_dgram", "1cpu", size, "send_recv"), 1000)
        lines.append(["path %s" % SIZE[size], b, u])
        judge("send + receive in one thread %s" % SIZE[size],
              get("path", "af_bus_over_unix_dgram", "1cpu", size, "ratio"), 1.05, True)
    for size in (64, 4096, 65536):
        for cfg in CONFIGS:
            b = inv(get("tput", "af_bus_recvmsg", cfg, size, "rate"), 1e9)
            r = inv(get("tput", "af_bus_ring", cfg, size, "rate"), 1e9)
            u = inv(get("tput", "unix_dgram", cfg, size, "rate"), 1e9)
            lines.append(["tput %s %s" % (SIZE[size], cfg), b, u, r])
        b = get("tput", "af_bus_recvmsg", "1cpu", size, "rate")
        u = get("tput", "unix_dgram", "1cpu", size, "rate")
        judge("one-way messages per second %s 1cpu over AF_UNIX's" % SIZE[size], over(b, u), 1.0,
              False)
    # A delivered multicast, from the rate: with -icount the guest clock
    # counts the instructions of both vCPUs (the sender's and the
    # receivers'), so 1e9 / rate is all of them, where the busy time is
    # in ticks of 1,645 instructions or more per message.
    for cfg in ("2cpu", "some"):
        for n in (1, 8, 64):
            b = inv(get("mcast", "af_bus", cfg, n, "delivered"), 1e9)
            u = inv(get("mcast", "unix_dgram_n_sends", cfg, n, "delivered"), 1e9)
            if b or u:
                lines.append(["mcast %d rx" % n + (", %d match" % ((n + 3) // 4)
                                                   if cfg == "some" else ""), b, u])
    judge("multicast to 1 receiver over one AF_UNIX send",
          over(inv(get("mcast", "af_bus", "2cpu", 1, "delivered"), 1e9),
               inv(get("mcast", "unix_dgram_n_sends", "2cpu", 1, "delivered"), 1e9)), 1.2, True)
    judge("multicast to 64 receivers over 64 AF_UNIX sends",
          over(inv(get("mcast", "af_bus", "2cpu", 64, "delivered"), 1e9),
               inv(get("mcast", "unix_dgram_n_sends", "2cpu", 64, "delivered"), 1e9)), 0.5, True)
    judge("10,000 non-matching D-Bus-shaped grants over none",
          get("match", "grants_10000_over_0", "dbus", 10000, "ratio"), 1.05, True)
    judge("10,000 non-matching grants (bloom4: random 4-bit masks) over none",
          get("match", "grants_10000_over_0", "bloom4", 10000, "ratio"), 1.05, True)
    # Instructions per message from the rates (both vCPUs, idle
    # excluded), as the tput rows above; busy ticks are 1,645
    # instructions or more wide.
    for cfg in CONFIGS:
        judge("ring: recvmsg's instructions per 64 KiB message over the ring's, %s" % cfg,
              over(inv(get("tput", "af_bus_recvmsg", cfg, 65536, "rate"), 1e9),
                   inv(get("tput", "af_bus_ring", cfg, 65536, "rate"), 1e9)), 1.5, False)
    judge("ring: throughput at 64 KiB 1cpu over recvmsg's",
          get("tput", "ring_over_recvmsg", "1cpu", 65536, "ratio"), 1.5, False)
    print("  %-22s%26s%26s%26s" % ("operation", "af_bus", "unix_dgram", "af_bus ring"))
    for line in lines:
        print("  " + line[0].ljust(22) + "".join(cell(v, 26) for v in line[1:]))
    print("  (rtt: a round trip; svc: a call of K clients at once; path: a send and its "
          "receive; tput: a message, from the rate; mcast: a delivered message, from the rate)")
    print()
    cal = [("loop turn (2 instructions)", get("calib", "loop", "1cpu", 2, "per_turn"))]
    for how in ("rep_movsb", "rep_movsq", "memcpy"):
        for size in (64, 4096, 65536):
            cal.append(("%s %s" % (how, SIZE[size]), get("calib", how, "1cpu", size, "per_copy")))
    if any(v for _, v in cal):
        print("Calibration: instructions counted per operation")
        for what, v in cal:
            print("  " + what.ljust(30) + cell(v, 26))
        print("  (a string instruction counts once per iteration: rep movsb of N bytes is about "
              "N instructions, rep movsq N/8; cache misses, TLB refills and contention cost no "
              "instructions and are not seen)")
        print()
    print("Instruction-count targets (three states)")
    print("\n".join(verdicts))
    print()


if os.environ.get("BENCH_ICOUNT", "0") not in ("", "0"):
    icount_report()

# The plot.
data = os.path.join(outdir, "plot.dat")


def block(f, name, lines):
    f.write("# %s\n" % name)
    for line in lines:
        f.write(" ".join(str(x) for x in line) + "\n")
    f.write("\n\n")


with open(data, "w") as f:
    lines = []
    for c in rtt_cases:
        line = ['"%s"' % c]
        for size in (64, 4096):
            v = get("rtt", c, "1cpu", size, "rtt") or (0, 0, 0)
            line += list(v)
        lines.append(line)
    block(f, "rtt", lines)
    lines = []
    for c in tput_cases:
        line = ['"%s"' % c]
        for size in (64, 4096, 65536):
            v = get("tput", c, "2cpu", size, "rate") or (0, 0, 0)
            line += list(v)
        lines.append(line)
    block(f, "tput", lines)
    lines = []
    for n in (1, 8, 64):
        line = [n]
        for c in mc_cases:
            line += list(get("mcast", c, "2cpu", n, "cpu") or (0, 0, 0))
        lines.append(line)
    block(f, "mcast", lines)
    lines = []
    for g in (0, 100, 1000, 10000):
        line = [max(g, 1)]
        for cfg in ("bloom4", "lowbit"):
            line += list(get("match", "af_bus", cfg, g, "send") or (0, 0, 0))
        lines.append(line)
    block(f, "match", lines)

plot = """
set terminal svg size 1200,900 dynamic font "sans,11"
set output '%(out)s/plot.svg'
set termoption noenhanced
set multiplot layout 2,2 title "AF_BUS benchmarks (median, bars min..max)"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.6 border -1
set key top left
set logscale y
set title "Unicast round trip, 1cpu (us, lower is better)"
plot '%(d)s' index 0 using 2:3:4:xtic(1) title "64 B", '' index 0 using 5:6:7 title "4 KiB"
set title "One-way throughput, 2cpu (msg/s)"
plot '%(d)s' index 1 using 2:3:4:xtic(1) title "64 B", '' index 1 using 5:6:7 title "4 KiB", \\
     '' index 1 using 8:9:10 title "64 KiB"
unset style
set style data linespoints
set logscale x
set xtics (1, 8, 64)
set title "Multicast: busy CPU per delivered message (us)"
set xlabel "receivers"
plot '%(d)s' index 2 using 1:2:3:4 with yerrorlines title "AF_BUS, one send", \\
     '' index 2 using 1:5:6:7 with yerrorlines title "AF_UNIX, N sends", \\
     '' index 2 using 1:8:9:10 with yerrorlines title "dbus-daemon signal"
set title "Match scaling: sender's time per multicast (us)"
set xlabel "non-matching grants (0 drawn at 1)"
set xtics ("0" 1, "100" 100, "1000" 1000, "10000" 10000)
plot '%(d)s' index 3 using 1:2:3:4 with yerrorlines title "bloom4 masks", \\
     '' index 3 using 1:5:6:7 with yerrorlines title "lowbit masks"
unset multiplot
""" % {"out": outdir, "d": data}
if not get("rtt", "af_bus", "1cpu", 64, "rtt"):
    # Only other groups ran (BENCH_GROUPS=dbus, say): nothing to draw.
    print("bench-report: no plot (the rtt group did not run)", file=sys.stderr)
else:
    try:
        subprocess.run(["gnuplot"], input=plot, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("bench-report: gnuplot failed: %s" % e, file=sys.stderr)
