"""Plots of `cargo xtask bench scale`: recall@10 vs QPS per configuration and N (with
the peers, when measured), and resident memory vs N. Reads target/bench/scale.json, writes two PNGs."""

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def finish(fig, ax, xlabel, ylabel, title, path):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--report", required=True)
    p.add_argument("--out-dir", required=True)
    a = p.parse_args()
    with open(a.report) as f:
        report = json.load(f)
    measures = report["measures"]
    ns = sorted({m["n"] for m in measures})
    configs = list(dict.fromkeys(m["config"] for m in measures))
    styles = ["-", "--", ":", "-."]

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for m in measures:
        sweep = m["sweep"]
        style = styles[ns.index(m["n"]) % len(styles)]
        colour = f"C{configs.index(m['config'])}"
        ax.plot(
            [s["recall"] for s in sweep],
            [s["qps"] for s in sweep],
            style,
            marker="o",
            markersize=3,
            color=colour,
            label=f"{m['config']}, N = {m['n']:,}",
        )
    # Peers measured on the same rows (`--peers`), grey, one marker per library.
    markers = ["x", "+", "^", "v"]
    names = []  # one report per peer run: the marker follows the library, not the run
    for report_n in report.get("peers", []):
        style = styles[ns.index(report_n["n"]) % len(styles)] if report_n["n"] in ns else "-"
        for peer in report_n["peers"]:
            if peer["peer"] not in names:
                names.append(peer["peer"])
            k = names.index(peer["peer"])
            sweep = peer["sweep"]
            ax.plot(
                [s["recall"] for s in sweep],
                [s["qps"] for s in sweep],
                style,
                marker=markers[k % len(markers)],
                markersize=4,
                color="grey",
                label=f"{peer['peer']}, N = {report_n['n']:,}",
            )
    ax.set_yscale("log")
    finish(fig, ax, "recall@10", "queries per second (one thread)",
           "Recall vs QPS as N grows (384-d MiniLM + synthetic mix)",
           os.path.join(a.out_dir, "scale-recall-qps.png"))

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for config in configs:
        rows = sorted((m for m in measures if m["config"] == config), key=lambda m: m["n"])
        mib = lambda kb: kb / 1024.0  # noqa: E731
        colour = f"C{configs.index(config)}"
        heap = [mib(m["memory_after_open"]["rss_anon_kb"] - m["baseline_rss_kb"]) for m in rows]
        peak = [mib(m["memory"]["peak_rss_kb"] - m["baseline_rss_kb"]) for m in rows]
        x = [m["n"] for m in rows]
        ax.plot(x, heap, "-o", color=colour, label=f"{config}: heap after reopen (above the bench's own)")
        ax.plot(x, peak, "--s", color=colour, label=f"{config}: peak, with touched rows")
    ax.set_xscale("log")
    ax.set_yscale("log")
    finish(fig, ax, "points (N)", "MiB", "Braid: resident memory vs N (384-d, m 16)",
           os.path.join(a.out_dir, "scale-memory.png"))


if __name__ == "__main__":
    main()
