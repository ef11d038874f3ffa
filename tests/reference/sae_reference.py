#!/usr/bin/python3
"""Minimal PyTorch TopK sparse autoencoder (SPEC section 3) and its golden fixture.

Writes tests/fixtures/sae_golden.safetensors (see tests/reference/README.md for the format).

  a     = (h - b_dec) W_enc^T + b_enc                      pre-activations       [B, m]
  z     = TopK_k(ReLU(a))   (k largest of relu(a) per row kept, the rest zero)      [B, m]
  h_hat = z W_dec + b_dec                                                           [B, d]
  denom = sum ||h - mean_batch(h)||^2
  FVU   = sum ||h_hat - h||^2 / denom
  AuxK: z_aux = top min(k_aux, #dead) of ReLU(a) among the dead latents only (others excluded),
        e_hat = z_aux W_dec  (no b_dec),  e = (h - h_hat).detach()   (constant target)
        AuxK  = min(#dead / k_aux, 1) * sum ||e_hat - e||^2 / denom
  loss  = FVU + 0.5 * AuxK

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/sae_reference.py [--out PATH]
The output is bit-for-bit reproducible (fixed seed, float32, one thread, deterministic algorithms).
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn

# Fixture configuration (scaled down from d_in 64 / 4096 latents / k 32 / k_aux 128).
D_IN = 16
N_LATENTS = 64
K = 4
K_AUX = 8
BATCH = 12
N_DEAD = 20
TIE_GAP = 1e-4
SEED = 20250118
MAX_DRAWS = 10000


class TopKSAE(nn.Module):
    def __init__(self, d_in, n_latents, k, k_aux):
        super().__init__()
        self.k, self.k_aux = k, k_aux
        bound = 1.0 / math.sqrt(d_in)
        w_enc = torch.empty(n_latents, d_in).uniform_(-bound, bound)
        self.W_enc = nn.Parameter(w_enc)
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.W_dec = nn.Parameter(w_enc / w_enc.norm(dim=1, keepdim=True))   # untied copy
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def pre(self, h):
        return (h - self.b_dec) @ self.W_enc.t() + self.b_enc

    @staticmethod
    def topk_relu(a, k, allowed=None):
        """Keeps the k largest of relu(a) per row (among `allowed` columns if given), zeros the rest."""
        r = torch.relu(a)
        if allowed is not None:
            r_sel = r[:, allowed]
            vals, idx = torch.topk(r_sel, k, dim=1)
            idx = torch.nonzero(allowed).squeeze(1)[idx]      # back to latent indices
        else:
            vals, idx = torch.topk(r, k, dim=1)
        return torch.zeros_like(r).scatter(1, idx, vals)

    def forward(self, h, dead):
        a = self.pre(h)
        z = self.topk_relu(a, self.k)
        recon = z @ self.W_dec + self.b_dec
        denom = ((h - h.mean(dim=0, keepdim=True)) ** 2).sum()
        fvu = ((recon - h) ** 2).sum() / denom
        n_dead = int(dead.sum())
        if n_dead > 0:
            k_aux = min(self.k_aux, n_dead)
            z_aux = self.topk_relu(a, k_aux, allowed=dead)
            e_hat = z_aux @ self.W_dec                       # decoded WITHOUT b_dec
            e = (h - recon).detach()                         # residual as a constant target
            auxk = min(n_dead / self.k_aux, 1.0) * ((e_hat - e) ** 2).sum() / denom
        else:
            auxk = torch.zeros((), dtype=h.dtype)
        loss = fvu + 0.5 * auxk
        return {"pre": a, "z": z, "recon": recon, "fvu": fvu, "auxk": auxk, "loss": loss}


def min_gap(a, k, allowed=None):
    """Smallest (k-th - (k+1)-th) gap of relu(a) per row (restricted to `allowed` columns)."""
    r = torch.relu(a)
    if allowed is not None:
        r = r[:, allowed]
    if r.shape[1] <= k:
        return float("inf")
    s = torch.sort(r, dim=1, descending=True).values
    return (s[:, k - 1] - s[:, k]).min().item()


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor of dtype float32 or int32), written in that order."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs = []
    off = 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float32:
            dt, code = "F32", "f"
        elif t.dtype == torch.int32:
            dt, code = "I32", "i"
        else:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        vals = t.reshape(-1).tolist()
        blob = struct.pack(f"<{len(vals)}{code}", *vals)
        assert name not in header, name
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return 8 + len(hj) + off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "sae_golden.safetensors"))
    args = ap.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    sae = TopKSAE(D_IN, N_LATENTS, K, K_AUX)
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():   # move the biases off zero so the test sees them
        sae.b_enc.add_(0.05 * torch.randn(N_LATENTS, generator=gen))
        sae.b_dec.add_(0.05 * torch.randn(D_IN, generator=gen))

    # Draw inputs (h not zero-mean, ~N_DEAD dead latents) until neither top-k selection has a near-tie.
    offset = 0.5 * torch.randn(D_IN, generator=gen)
    for draw in range(MAX_DRAWS):
        h = torch.randn(BATCH, D_IN, generator=gen) + offset
        dead = torch.zeros(N_LATENTS, dtype=torch.bool)
        dead[torch.randperm(N_LATENTS, generator=gen)[:N_DEAD]] = True
        with torch.no_grad():
            a = sae.pre(h)
        g_main = min_gap(a, K)
        g_aux = min_gap(a, min(K_AUX, int(dead.sum())), allowed=dead)
        if g_main > TIE_GAP and g_aux > TIE_GAP:
            break
    else:
        raise SystemExit("no tie-free draw found")

    sae.zero_grad()
    out = sae(h, dead)
    out["loss"].backward()
    assert min_gap(out["pre"].detach(), K) > TIE_GAP
    assert min_gap(out["pre"].detach(), min(K_AUX, N_DEAD), allowed=dead) > TIE_GAP
    assert int((out["z"] > 0).sum(dim=1).min()) == K

    p = dict(sae.named_parameters())
    tensors = [("input.h", h), ("input.dead", dead.to(torch.int32))]
    tensors += [("param." + n, p[n].detach().clone()) for n in ("W_enc", "b_enc", "W_dec", "b_dec")]
    tensors += [("out.pre", out["pre"]), ("out.z", out["z"]), ("out.recon", out["recon"]),
                ("out.fvu", out["fvu"].reshape(1)), ("out.auxk", out["auxk"].reshape(1)),
                ("out.loss", out["loss"].reshape(1))]
    tensors += [("grad." + n, p[n].grad.detach().clone()) for n in ("W_enc", "b_enc", "W_dec", "b_dec")]
    meta = {"d_in": str(D_IN), "n_latents": str(N_LATENTS), "k": str(K), "k_aux": str(K_AUX),
            "batch": str(BATCH)}
    path = os.path.normpath(args.out)
    size = write_safetensors(path, tensors, meta)

    print(f"wrote {path} ({size} bytes, {len(tensors)} tensors; input draw #{draw}, "
          f"min top-k gaps main {g_main:.3g}, aux {g_aux:.3g})")
    print(f"out.fvu = {out['fvu'].item():.9g}  out.auxk = {out['auxk'].item():.9g}  "
          f"out.loss = {out['loss'].item():.9g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
