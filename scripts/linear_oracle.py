#!/usr/bin/env python3
"""How far can *any* shift of SASRec's user vector go? (docs/steering.md, PopSteer-I)

usage: linear_oracle.py DATA MODEL.safetensors [SAE.safetensors] [--alphas 0.05,0.1,...]

A shift Δh of every user vector moves item i's score by Δh · E_i, so the best single shift against
popularity is the direction whose item scores follow −log(1 + popularity) most closely: the
least-squares fit of −log(1 + p_i) (centred) on the item embeddings E_i (with an intercept). This
prints the fit's R², then NDCG@10 and Gini@10 on the validation split (relative to plain SASRec)
of h + α ν u for that direction u (ν = the validation users' mean ‖h‖), for the negated mean user
vector, and, with an SAE, for PopSteer-I's direction (steer_decoder.h, N = all) — computed here in
numpy from the item-side probe's definition, as a cross-check of the C code. Uses the popsteer
Python package (python/) for loading and user vectors; numpy only. Run with /usr/bin/python3.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import popsteer as ps  # noqa: E402


def metrics(h, E, tgt, k=10):
    """NDCG@k (one target per user) and Gini@k of the exposure counts over all real items."""
    n_items = E.shape[0] - 1
    cnt = np.zeros(n_items + 1)
    ndcg = 0.0
    for s in range(0, h.shape[0], 4096):
        S = h[s:s + 4096] @ E.T
        S[:, 0] = -np.inf
        top = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, top, 1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        hit = top == tgt[s:s + 4096, None]
        ndcg += np.sum(np.where(hit.any(1), 1 / np.log2(np.argmax(hit, 1) + 2), 0))
        np.add.at(cnt, top.ravel(), 1)
    c = np.sort(cnt[1:])
    j = np.arange(1, n_items + 1)
    return ndcg / h.shape[0], np.sum((2 * j - n_items - 1) * c) / (n_items * c.sum())


def item_side_direction(sae, E, labels):
    """PopSteer-I's v for N = all latents: Cohen's d of W_dec[j] · E_i, head vs tail items."""
    W = np.asarray(sae.W_dec, np.float64)
    e = E[1:].astype(np.float64) @ W.T
    head, tail = labels[1:] == 1, labels[1:] == -1
    sd = np.sqrt((e[head].var(0) + e[tail].var(0)) / 2)
    d = np.where(sd > 0, (e[head].mean(0) - e[tail].mean(0)) / np.where(sd > 0, sd, 1), 0)
    a = np.abs(d)
    lo = a[a > 0].min()
    w = np.where(d != 0, (a - lo) / (a.max() - lo), 0) * -np.sign(d)
    return w @ W


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("model")
    ap.add_argument("sae", nargs="?")
    ap.add_argument("--alphas", default="0.05,0.1,0.15,0.2,0.3")
    a = ap.parse_args()
    ds = ps.Dataset.load(a.data)
    m = ps.SASRec.load(a.model)
    h = m.user_vectors(ds.prefixes("valid"))
    tgt = ds.targets("valid")
    E = np.array(m.item_embedding)
    n0, g0 = metrics(h, E, tgt)
    lp = np.log1p(np.asarray(ds.popularity, np.float64)[1:])
    t = -(lp - lp.mean())
    A = np.hstack([E[1:].astype(np.float64), np.ones((E.shape[0] - 1, 1))])
    coef = np.linalg.lstsq(A, t, rcond=None)[0]
    r2 = 1 - np.sum((t - A @ coef) ** 2) / np.sum(t ** 2)
    print("%s: SASRec valid NDCG@10 %.4f Gini@10 %.4f; R^2 of -log(1+pop) on the item embeddings %.3f"
          % (os.path.basename(a.data), n0, g0, r2))
    dirs = [("least-squares", coef[:-1]), ("-mean h", -h.mean(0).astype(np.float64))]
    if a.sae:
        dirs.append(("PopSteer-I (N all)", item_side_direction(ps.SAE.load(a.sae), E, np.asarray(ds.labels))))
    nu = np.linalg.norm(h, axis=1).mean()
    for name, v in dirs:
        u = v / np.linalg.norm(v)
        for alpha in (float(x) for x in a.alphas.split(",")):
            n, g = metrics(h + (alpha * nu * u).astype(np.float32), E, tgt)
            print("  %-20s alpha %-5g NDCG@10 %+6.2f %%  Gini@10 %+6.2f %%" % (name, alpha, 100 * (n / n0 - 1),
                                                                              100 * (g / g0 - 1)))


if __name__ == "__main__":
    main()
