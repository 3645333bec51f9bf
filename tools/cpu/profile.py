"""Where a side-by-side row's time goes (issue 25): oneDNN's primitives and, with perf, every op's CPU samples.

Drives `ddpo bench rows --serve` (the rows of tools/cpu/side_by_side.sh) with ONEDNN_VERBOSE=profile_exec: per row it
sets the row up, warms it up, then times --repeats calls; only what the timed calls print and sample counts.
- oneDNN: each primitive oneDNN ran (convolution or reorder, its implementation, forward or backward), calls and ms
  per row call, from oneDNN's own timings.
- perf (when `perf` runs here): `perf record -p` attached for the timed calls only, the samples grouped by what the
  symbol is (oneDNN's generated kernels, MKL's GEMM, flash attention, norms, element-wise ops, OpenMP's waiting,
  the kernel: page faults, the C heap), with each group's share of the row's median time.
Run it as tools/cpu/profile.sh. Standard library only.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile


class Ours:
    """`ddpo bench rows --serve`; keeps what it prints between replies (oneDNN's verbose lines)."""

    def __init__(self, argv, env, log):
        # From the repository root, where the fixture rows' default folder is.
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env, bufsize=1, cwd=root)
        self.ask(None)

    def ask(self, command):
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        printed = []
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                reply = line[3:].strip()
                if reply.startswith("error"):
                    raise RuntimeError(f"ddpo: {reply}")
                return reply, printed
            printed.append(line)
        raise RuntimeError(f"ddpo ended (code {self.proc.wait()})")


def onednn_table(lines, calls):
    """oneDNN's exec lines -> rows (primitive, implementation, direction, calls per row call, ms per row call)."""
    total, count = collections.defaultdict(float), collections.Counter()
    for line in lines:
        f = line.strip().split(",")
        if len(f) < 8 or f[:4] != ["onednn_verbose", "v1", "primitive", "exec"]:
            continue
        direction = f[7] if f[7] != "undef" else ""
        key = (f[5], f[6], direction)
        total[key] += float(f[-1])
        count[key] += 1
    return sorted(((k[0], k[1], k[2], count[k] / calls, total[k] / calls) for k in total), key=lambda r: -r[4])


GROUPS = [  # (group, test on "dso|symbol"), first match wins
    ("oneDNN (its generated kernels: convolutions and reorders)", lambda s: s.startswith("[JIT]") or s.startswith("//anon") or "dnnl::" in s),
    ("MKL GEMM (linear layers, attention)", lambda s: "mkl_" in s),
    ("flash attention", lambda s: "flash_attention" in s),
    ("group/layer norm", lambda s: re.search(r"GroupNorm|LayerNorm|RowwiseMoments|ComputeInternalGradients", s) is not None),
    ("copies (contiguous, cat, permute)", lambda s: re.search(r"copy_kernel|cat_serial|memmove|memcpy|_copy_", s) is not None),
    ("element-wise (silu, gelu, add, mul, exp)", lambda s: re.search(r"VectorizedLoop|Sleef|gelu|silu|_kernel|exp", s) is not None),
    ("OpenMP (a thread spinning for work while the other runs a serial op)", lambda s: "libgomp" in s or "libiomp" in s),
    ("kernel (page faults, mostly)", lambda s: "[kernel" in s),
    ("C heap (malloc/free)", lambda s: re.search(r"libc\.so.*(malloc|free|chunk|consolidate|sysmalloc)", s) is not None),
    (".NET (TorchSharp calls, GC)", lambda s: re.search(r"libcoreclr|libclrjit|System\.|\.dll", s) is not None),
]


def short(symbol):
    """A C++ symbol without its template and argument lists; ATen's loop callbacks by the kernel they run."""
    kernel = re.search(r"(\w+_kernel|\w+Kernel\w*)", symbol) if "function_ref" in symbol else None
    if kernel:
        return kernel.group(1) + " (ATen loop)"
    s = symbol.replace("(anonymous namespace)::", "")
    while True:
        t = re.sub(r"<[^<>]*>|\([^()]*\)", "", s)
        if t == s:
            return s.strip()[:90]
        s = t


def perf_groups(data):
    """perf.data -> {group: share}, {symbol: share} (top symbols)."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none",
                          "--percent-limit", "0"], capture_output=True, text=True).stdout
    groups, symbols = collections.Counter(), collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+(?: \S+ \d+)?)\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        share, dso, sym = float(m.group(1)) / 100, m.group(2), m.group(4).strip()
        key = f"{dso}|{sym}"
        group = next((g for g, test in GROUPS if test(key)), "other")
        groups[group] += share
        symbols[(group, short(sym) or dso)] += share
    return groups, symbols


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ddpo", help="our CLI, a path or a command line (default: the built one)")
    p.add_argument("--rows", default="unet_fwd_b32,unet_fwdbwd_b32,sample_step_b16,train_step_b4")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-perf", action="store_true", help="oneDNN's timings only")
    p.add_argument("--json", help="write the tables here (default: $OUT/profile.json when OUT is set)")
    p.add_argument("--top", type=int, default=12, help="symbols listed per row")
    a = p.parse_args()
    if not a.ddpo:
        a.ddpo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "Ddpo.Cli", "bin", "Release", "net10.0", "ddpo")
        if not os.access(a.ddpo, os.X_OK):
            sys.exit(f"profile: no {os.path.normpath(a.ddpo)}: run 'dotnet build src/Ddpo.Cli -c Release' first, or pass --ddpo")
    if not a.json and os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)
        a.json = os.path.join(os.environ["OUT"], "profile.json")
    use_perf = not a.no_perf and shutil.which("perf") is not None
    if not a.no_perf and not use_perf:
        print("perf not found (Debian: apt-get install linux-perf): oneDNN's timings only", file=sys.stderr)
    env = dict(os.environ, ONEDNN_VERBOSE="profile_exec")
    work = tempfile.mkdtemp(prefix="ddpo-profile-")
    with open(os.path.join(work, "ours.log"), "w") as log:
        ours = Ours(a.ddpo.split() + ["bench", "rows", "--serve", "--threads", str(a.threads), "--warmup", str(a.warmup)], env, log)
        report = []
        for name in a.rows.split(","):
            ours.ask("setup " + name)
            for _ in range(a.warmup):
                ours.ask("time " + name)
            recorder, data = None, os.path.join(work, name + ".perf")
            if use_perf:
                recorder = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-o", data, "-p", str(ours.proc.pid)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            ms, printed = [], []
            for _ in range(a.repeats):
                reply, lines = ours.ask("time " + name)
                ms.append(float(reply.split()[1]))
                printed += lines
            if recorder:
                recorder.send_signal(signal.SIGINT)
                err = recorder.communicate(timeout=120)[1]
                if recorder.returncode not in (0, -2) or not os.path.exists(data):
                    print(f"perf record failed ({err.strip()[:300]}); perf_event_paranoid may need lowering", file=sys.stderr)
                    recorder = None
            ours.ask("drop " + name)
            median = statistics.median(ms)
            row = {"row": name, "median_ms": median, "onednn": [], "perf_groups": {}, "perf_symbols": []}
            row["onednn"] = [dict(zip(["primitive", "implementation", "direction", "calls", "ms"], r)) for r in onednn_table(printed, a.repeats)]
            if recorder:
                groups, symbols = perf_groups(data)
                row["perf_groups"] = dict(groups.most_common())
                row["perf_symbols"] = [{"group": g, "symbol": s, "share": v} for (g, s), v in symbols.most_common(a.top)]
            report.append(row)
            print_row(row)
        ours.ask("quit") if ours.proc.poll() is None else None
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "repeats": a.repeats, "rows": report}, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


def print_row(row):
    median = row["median_ms"]
    print(f"\n## {row['row']}: {median:.1f} ms per call (median)\n")
    if row["onednn"]:
        dnnl = sum(r["ms"] for r in row["onednn"])
        print(f"oneDNN primitives: {dnnl:.1f} ms per call in all ({100 * dnnl / median:.0f}% of the call; oneDNN's timings)\n")
        print("| primitive | implementation | direction | per call | ms per call |\n|---|---|---|---|---|")
        for r in row["onednn"]:
            print(f"| {r['primitive']} | {r['implementation']} | {r['direction']} | {r['calls']:.1f} | {r['ms']:.1f} |")
    if row["perf_groups"]:
        print("\nCPU samples of the timed calls (perf, all threads), by what the code is; ms = share x the median call:\n")
        print("| group | share | ms per call |\n|---|---|---|")
        for g, share in row["perf_groups"].items():
            print(f"| {g} | {100 * share:.1f}% | {share * median:.1f} |")
        print("\n| top symbols | group | share |\n|---|---|---|")
        for s in row["perf_symbols"]:
            print(f"| `{s['symbol']}` | {s['group']} | {100 * s['share']:.1f}% |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
