"""How well one-, two- and three-level bit codes rank, without a graph (docs/hnsw.md,
"Two-bit codes").

Every point of a WordNet/MiniLM set (and, with --n beyond its rows, the scale bench's
synthetic mix around them: normalize(a·x + (1 − a)·y + g), a in [0.25, 0.75), g of
standard deviation 0.02, from numpy's generator rather than the bench's) is coded as
Braid codes it: the residual r from the mean, read back as r̂ = s · level(r) with s
chosen so that r̂·r = |r|². Each query ranks all points by q·μ + q·r̂; the best
10 · oversampling are re-scored exactly and recall@10 is counted against the exact top
10. Codes compared:

  one bit     level = sign(r)                                  (Braid's binary codes)
  two bits    level ∈ {−3, −1, 1, 3}, uniform steps of Δ       (Braid's two-bit codes)
  three level level ∈ {−1, 0, 1}, zero within ±σᵢ/3 per dim    (≈ 1.58 bits)

with Δ = f · mean|rᵢ| for f in --steps (the shipped codes use 1.25).

    python benches/probes/bit_codes.py --data DIR [--n 200000] [--queries 200]
"""

import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a directory with out.npy and queries.npy")
    ap.add_argument("--n", type=int, default=0, help="points (default: the set's rows)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--steps", default="1.0,1.25")
    args = ap.parse_args()

    x = np.load(f"{args.data}/out.npy").astype(np.float32)
    q = np.load(f"{args.data}/queries.npy").astype(np.float32)[: args.queries]
    if args.n > len(x):
        rng = np.random.default_rng(5)
        m = args.n - len(x)
        i, j = rng.integers(0, len(x), m), rng.integers(0, len(x), m)
        a = rng.uniform(0.25, 0.75, m).astype(np.float32)[:, None]
        mix = a * x[i] + (1 - a) * x[j] + 0.02 * rng.standard_normal((m, x.shape[1]), dtype=np.float32)
        x = np.vstack([x, mix])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = q @ x.T
    truth = np.argsort(-exact, axis=1)[:, :10]
    mu = x.mean(axis=0)
    r = x - mu

    def read_back(levels):
        along = (levels * r).sum(1)
        s = np.where(along > 0, (r * r).sum(1) / np.maximum(along, 1e-30), 0.0)
        return levels * s[:, None]

    codes = [("one bit", read_back(np.sign(r)))]
    mean_abs = np.abs(r).mean(1, keepdims=True)
    for f in (float(s) for s in args.steps.split(",")):
        u = np.clip(np.floor(r / (f * mean_abs)) + 2, 0, 3)
        codes.append((f"two bits, step {f}", read_back(2 * u - 3)))
    sd = r.std(0)
    codes.append(("three levels", read_back(np.where(r > sd / 3, 1.0, np.where(r < -sd / 3, -1.0, 0.0)))))

    overs = (1, 1.5, 2, 3, 4, 6, 10, 20)
    print(f"{len(x)} points, {len(q)} queries: recall@10 at oversampling " + " / ".join(map(str, overs)))
    for name, rhat in codes:
        order = np.argsort(-(q @ mu)[:, None] - q @ rhat.T, axis=1)
        recalls = []
        for o in overs:
            pool = order[:, : int(np.ceil(10 * o))]
            best = np.take_along_axis(pool, np.argsort(-np.take_along_axis(exact, pool, 1), axis=1)[:, :10], 1)
            recalls.append(np.mean([len(set(t) & set(b)) / 10 for t, b in zip(truth, best)]))
        print(f"  {name:20s} " + " / ".join(f"{v:.4f}" for v in recalls))


if __name__ == "__main__":
    main()
