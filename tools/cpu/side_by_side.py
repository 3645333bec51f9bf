"""Side-by-side CPU speed table, ours against PyTorch + diffusers (issue 25); run through tools/cpu/side_by_side.sh.

One process pair: `ddpo bench rows --serve` (ours) and tools/cpu/torch_rows.py (the refenv's torch 1.13 + diffusers
0.31), both at --threads. Per row: ours builds it and writes its inputs (seeded) to a safetensors file, PyTorch loads
the same folder and those inputs; each warms up, then every repeat times one call on each side, alternating which
goes first; the medians are compared. FLOPs per call are ours (counted on the real call, formula per row in the JSON);
the peak is cores x clock x FLOP/cycle from /proc/cpuinfo (see peak()). Standard library only.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def peak(threads):
    """fp32 peak GFLOP/s of `threads` cores: threads x GHz x FLOP/cycle, from /proc/cpuinfo's flags and clock."""
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                info.setdefault(k, v)
    flags = set(info.get("flags", "").split())
    vendor, family = info.get("vendor_id", ""), int(info.get("cpu family", "0"))
    ghz = None
    try:  # the rated maximum where the kernel states it, else the current clock /proc/cpuinfo shows
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("CPU max MHz:"):
                ghz = float(line.split(":")[1]) / 1000
    except OSError:
        pass
    clock_source = "lscpu CPU max MHz" if ghz else "/proc/cpuinfo cpu MHz"
    ghz = ghz or float(info.get("cpu MHz", "0")) / 1000
    if "avx512f" in flags and vendor == "AuthenticAMD" and family < 26:
        per_cycle, why = 32, "AVX-512 on Zen 4 (family 25): 512-bit FMAs on two 256-bit pipes = 2 x 8 lanes x 2"
    elif "avx512f" in flags:
        per_cycle, why = 64, "AVX-512 with two 512-bit FMA pipes (Zen 5 = family 26, or Intel server cores) = 2 x 16 lanes x 2"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, why = 32, "AVX2 + FMA: two 256-bit FMA pipes = 2 x 8 lanes x 2"
    else:
        per_cycle, why = 8, "SSE: 4 lanes x (add + mul)"
    cores = min(threads, os.cpu_count() or threads)
    return {"gflops": cores * ghz * per_cycle, "formula": f"{cores} cores x {ghz:.3f} GHz ({clock_source}) x {per_cycle} FLOP/cycle ({why})",
            "model": info.get("model name", platform.processor()), "family": family, "flags_used": sorted(flags & {"avx512f", "avx2", "fma"})}


class Side:
    """A child answering setup/time/drop/quit with lines that start with '@@ '."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, bufsize=1)
        self.hello = self._read()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return line[3:].strip()
        raise RuntimeError(f"{self.name} ended (code {self.proc.wait()}); see {self.log.name}")

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if reply.startswith("error"):
            raise RuntimeError(f"{self.name}: {reply}")
        return reply

    def close(self):
        try:
            self.ask("quit")
        except (RuntimeError, BrokenPipeError, OSError):
            pass
        self.proc.wait(timeout=60)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ddpo", required=True, help="our CLI (a path, or a command line)")
    p.add_argument("--refenv", help="a set-up refenv folder (with site/ and env.sh); absent: PyTorch's side is skipped")
    p.add_argument("--rows", default="")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", required=True, help="folder for the inputs and the children's logs")
    p.add_argument("--json", help="write the table here")
    a = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(a.work, exist_ok=True)
    inputs = os.path.join(a.work, "inputs")
    rows_arg = ["--rows", a.rows] if a.rows else []
    ours = Side("ours", a.ddpo.split() + ["bench", "rows", "--serve", "--threads", str(a.threads), "--warmup", str(a.warmup),
                                          "--inputs-dir", inputs], os.path.join(a.work, "ours.log"))
    names = a.rows.split(",") if a.rows else None
    torch_side, torch_info = None, None
    if a.refenv:
        cmd = f'source "{a.refenv}/env.sh" && exec "$REFENV_PY" "{here}/torch_rows.py" --threads {a.threads} --warmup {a.warmup}'
        torch_side = Side("pytorch", ["bash", "-c", cmd], os.path.join(a.work, "pytorch.log"))
        torch_info = json.loads(torch_side.hello.split(" ", 1)[1])
    if names is None:
        names = ["unet_fwd_b32", "unet_fwdbwd_b32", "sd14_fwd_b1", "sample_step_b16", "train_step_b4", "vae_decode_b16", "sd3_fwd", "flux_fwd"]
    pk = peak(a.threads)
    results = []
    for name in names:
        t0 = time.time()
        row = json.loads(ours.ask("setup " + name).split(" ", 1)[1])
        ours_ms, torch_ms, note = [], [], None
        if torch_side:
            try:
                torch_side.ask(f"setup {name} {row['inputs']}")
            except RuntimeError as e:
                note = str(e)
        for i in range(a.repeats):
            order = [("ours", ours), ("pytorch", torch_side)] if i % 2 == 0 else [("pytorch", torch_side), ("ours", ours)]
            for who, side in order:
                if who == "ours":
                    ours_ms.append(float(ours.ask("time " + name).split()[1]))
                elif side and note is None:
                    torch_ms.append(float(side.ask("time " + name).split()[1]))
        ours.ask("drop " + name)
        if torch_side and note is None:
            torch_side.ask("drop " + name)
        om = statistics.median(ours_ms)
        tm = statistics.median(torch_ms) if torch_ms else None
        gflops = row["flops"] / 1e6 / om
        r = {"row": name, "description": row["description"], "ours_ms": om, "pytorch_ms": tm, "ratio": tm / om if tm else None,
             "gflop_per_call": row["flops"] / 1e9, "flop_formula": row["flop_formula"], "ours_gflops": gflops,
             "ours_pct_peak": 100 * gflops / pk["gflops"], "pytorch_gflops": row["flops"] / 1e6 / tm if tm else None,
             "ours_all_ms": ours_ms, "pytorch_all_ms": torch_ms, "note": note, "wall_s": time.time() - t0}
        results.append(r)
        print(f"[side_by_side] {name}: ours {om:.1f} ms, PyTorch {tm and round(tm, 1)} ms ({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    ours.close()
    if torch_side:
        torch_side.close()

    head = ["row", "ours ms", "PyTorch ms", "PyTorch/ours", "GFLOP/call", "GFLOP/s", "% of peak"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        tm = f"{r['pytorch_ms']:.1f}" if r["pytorch_ms"] else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        lines.append(f"| {r['row']} | {r['ours_ms']:.1f} | {tm} | {ratio} | {r['gflop_per_call']:.3f} | {r['ours_gflops']:.1f} | {r['ours_pct_peak']:.1f}% |")
    ratios = [r["ratio"] for r in results if r["ratio"]]
    print(f"CPU: {pk['model']}, {a.threads} threads; peak {pk['gflops']:.0f} GFLOP/s = {pk['formula']}")
    print(f"load average before: {LOAD_BEFORE}; after: {os.getloadavg()}")
    if not torch_side:
        print("PyTorch side skipped: no set-up refenv (see tools/cpu/side_by_side.sh)")
    print("\n".join(lines))
    print(f"min ratio {min(ratios):.2f} over {len(ratios)} rows" if ratios else "min ratio - over 0 rows")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": pk, "threads": a.threads, "repeats": a.repeats, "warmup": a.warmup, "pytorch": torch_info,
                       "load_before": LOAD_BEFORE, "load_after": os.getloadavg(), "rows": results,
                       "min_ratio": min(ratios) if ratios else None, "ratio_rows": len(ratios)}, f, indent=1)


LOAD_BEFORE = os.getloadavg()
if __name__ == "__main__":
    main()
