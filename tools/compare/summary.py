#!/usr/bin/env python3
"""summary.md and summary.json of a tools/compare/algorithms.sh matrix: python3 tools/compare/summary.py OUT [--algorithms a,b] [--seeds 1,2,3]

Per run (OUT/runs/ALG-sSEED): samples seen, seconds (the metrics' phase seconds summed, and the train process's wall
time), reward at epoch 0 and at the last epoch (mean +- s.e.m.), the gain (last minus first, in SE of the difference:
sqrt(sem0^2 + semL^2)), `ddpo eval`'s paired change on the train and held-out prompts, the watch rewards base ->
fine-tuned (from `ddpo eval` on the train prompts: reward backpropagation logs no watch rewards during training), and
the peak RSS of the train and eval processes (`/usr/bin/time -v`). Then the mean of the seeds per algorithm.
"""
import argparse, glob, json, math, os, re, statistics

PHASES = ("sampling_s", "reward_s", "training_s", "eval_images_s")


def gnu_time(path):
    """(wall seconds, peak RSS in MB) from a `/usr/bin/time -v` file, or (None, None)."""
    if not os.path.exists(path):
        return None, None
    text = open(path).read()
    wall = rss = None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        wall = 0.0
        for part in m.group(1).split(":"):
            wall = wall * 60 + float(part)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        rss = int(m.group(1)) / 1024
    return wall, rss


def latest_eval(run):
    files = sorted(glob.glob(os.path.join(run, "eval", "eval-epoch-*.json")))
    return json.load(open(files[-1])) if files else None


def run_summary(out, alg, seed):
    run = os.path.join(out, "runs", f"{alg}-s{seed}")
    metrics_path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(metrics_path):
        return None
    m = [json.loads(line) for line in open(metrics_path) if line.strip()]
    if not m:
        return None
    first, last = m[0], m[-1]
    gain = last["reward_mean"] - first["reward_mean"]
    se = math.hypot(first["reward_sem"], last["reward_sem"])
    train_wall, train_rss = gnu_time(run + ".train.time")
    eval_wall, eval_rss = gnu_time(run + ".eval.time")
    row = {
        "algorithm": alg, "seed": seed, "epochs": len(m),
        "samples": sum(x.get("samples", 0) for x in m),
        "optimizer_steps": sum(x.get("optimizer_steps", 0) for x in m),
        "phase_s": {p: round(sum(x.get(p, 0) for x in m), 1) for p in PHASES},
        "phase_total_s": round(sum(x.get(p, 0) for x in m for p in PHASES), 1),
        "train_wall_s": train_wall, "train_peak_rss_mb": train_rss, "eval_wall_s": eval_wall, "eval_peak_rss_mb": eval_rss,
        "reward_first": first["reward_mean"], "reward_first_sem": first["reward_sem"],
        "reward_last": last["reward_mean"], "reward_last_sem": last["reward_sem"],
        "reward_curve": [x["reward_mean"] for x in m],
        "gain": gain, "gain_se": se, "gain_in_se": gain / se if se > 0 else float("nan"),
        "watch_metrics": {k[len("watch_"):-len("_mean")]: [first.get(k), last.get(k)] for k in first if k.startswith("watch_")},
        "eval": {},
    }
    ev = latest_eval(run)
    if ev:
        row["eval_checkpoint_epoch"] = ev["checkpoint_epoch"]
        for r in ev["results"]:
            row["eval"].setdefault(r["prompts"], {})[r["reward"]] = {
                "base": r["base_mean"], "finetuned": r["finetuned_mean"], "change": r["change"], "change_sem": r["change_sem"], "n": r["n"]}
    return row


def fmt_change(e):
    if not e:
        return "-"
    z = e["change"] / e["change_sem"] if e["change_sem"] else float("nan")
    return f"{e['change']:+.4f} ({z:+.1f} SE)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--algorithms", default="ddpo_is,grpo,draft,refl")
    ap.add_argument("--seeds", default="1,2,3")
    a = ap.parse_args()
    algs, seeds = a.algorithms.split(","), [int(s) for s in a.seeds.split(",")]
    rows = [r for alg in algs for s in seeds if (r := run_summary(a.out, alg, s))]
    if not rows:
        raise SystemExit(f"summary.py: no finished run under {a.out}/runs")
    reward = next((k for r in rows for k in r["eval"].get("train", {}) if not k.startswith(("image_contrast", "colorfulness", "jpeg"))), None)
    watches = sorted({k for r in rows for k in r["eval"].get("train", {}) if k != reward})

    md = ["| algorithm | seed | samples | seconds (phases / process) | reward epoch 0 -> last | gain | held-out change (paired) | "
          + " | ".join(f"{w} base -> tuned" for w in watches) + " | peak RSS train / eval |",
          "|---|---|---|---|---|---|---|" + "---|" * len(watches) + "---|"]
    for r in rows:
        ev = r["eval"]
        wcells = []
        for w in watches:
            e = ev.get("train", {}).get(w)
            wcells.append(f"{e['base']:.3f} -> {e['finetuned']:.3f}" if e else "-")
        wall = f"{r['train_wall_s']:.0f}" if r["train_wall_s"] else "-"
        rss = " / ".join(f"{x:.0f} MB" if x else "-" for x in (r["train_peak_rss_mb"], r["eval_peak_rss_mb"]))
        md.append(f"| {r['algorithm']} | {r['seed']} | {r['samples']} | {r['phase_total_s']:.0f} / {wall} | "
                  f"{r['reward_first']:.4f} ± {r['reward_first_sem']:.4f} -> {r['reward_last']:.4f} ± {r['reward_last_sem']:.4f} | "
                  f"{r['gain']:+.4f} ({r['gain_in_se']:+.1f} SE) | {fmt_change(ev.get('held-out', {}).get(reward))} | "
                  + " | ".join(wcells) + f" | {rss} |")

    means = []
    md += ["", "| mean of seeds | runs | gain | gain / SE | train-prompt change | held-out change | "
           + " | ".join(f"{w} change" for w in watches) + " | seconds (phases / process) | peak RSS train |",
           "|---|---|---|---|---|---|" + "---|" * len(watches) + "---|---|"]
    for alg in algs:
        rs = [r for r in rows if r["algorithm"] == alg]
        if not rs:
            continue
        def mean(f):
            v = [x for x in (f(r) for r in rs) if x is not None and not (isinstance(x, float) and math.isnan(x))]
            return statistics.fmean(v) if v else None
        def ev(r, prompts, name):
            e = r["eval"].get(prompts, {}).get(name)
            return e["change"] if e else None
        s = {"algorithm": alg, "runs": len(rs), "gain": mean(lambda r: r["gain"]), "gain_in_se": mean(lambda r: r["gain_in_se"]),
             "train_change": mean(lambda r: ev(r, "train", reward)), "heldout_change": mean(lambda r: ev(r, "held-out", reward)),
             "watch_change": {w: mean(lambda r, w=w: ev(r, "train", w)) for w in watches},
             "phase_total_s": mean(lambda r: r["phase_total_s"]), "train_wall_s": mean(lambda r: r["train_wall_s"]),
             "train_peak_rss_mb": max((r["train_peak_rss_mb"] or 0) for r in rs)}
        means.append(s)
        f = lambda x, spec: "-" if x is None else format(x, spec)
        md.append(f"| {alg} | {s['runs']} | {f(s['gain'], '+.4f')} | {f(s['gain_in_se'], '+.1f')} | {f(s['train_change'], '+.4f')} | "
                  f"{f(s['heldout_change'], '+.4f')} | " + " | ".join(f(s["watch_change"][w], "+.4f") for w in watches)
                  + f" | {f(s['phase_total_s'], '.0f')} / {f(s['train_wall_s'], '.0f')} | {s['train_peak_rss_mb']:.0f} MB |")

    with open(os.path.join(a.out, "summary.md"), "w") as fh:
        fh.write(f"Reward: {reward}; watch rewards from `ddpo eval` on the train prompts (base -> fine-tuned).\n\n" + "\n".join(md) + "\n")
    with open(os.path.join(a.out, "summary.json"), "w") as fh:
        json.dump({"reward": reward, "watch_rewards": watches, "runs": rows, "mean_of_seeds": means}, fh, indent=2)
    print("\n".join(md))
    print(f"wrote {a.out}/summary.md and summary.json")


if __name__ == "__main__":
    main()
