#!/usr/bin/python3
"""Minimal PyTorch SASRec (RecBole flavour, SPEC section 2) and its golden fixture.

Writes tests/fixtures/sasrec_golden.safetensors (see tests/reference/README.md for the format).

The model reproduces RecBole's SASRec module by module, with RecBole's state_dict names:
  x = LayerNorm(E[seq] + P[0..L-1]) -> dropout
  mask[b, q, k] = 0 if k <= q and seq[b, k] != 0 else -10000.0   (additive)
  for each post-LN block:
      h = LayerNorm(dropout(dense(softmax(Q K^T / sqrt(head_dim) + mask) V)) + x)   (attn dropout too)
      x = LayerNorm(dropout(dense_2(gelu_erf(dense_1(h)))) + h)
  logits[b, t, :] = x[b, t] . E^T over all n_items + 1 rows (pad row included, no bias)
  loss = mean cross-entropy over the positions with target >= 0 (target -1 = no loss)

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/sasrec_reference.py [--out PATH]
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
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# Fixture configuration (scaled down from the real 64-dim / 2-head / 50-position model).
N_ITEMS = 30
HIDDEN = 16
N_HEADS = 2
N_LAYERS = 2
INNER = 32
MAX_LEN = 8
LN_EPS = 1e-12
BATCH = 4
SEQ_LENS = [8, 5, 3, 1]
WINDOW_ROWS = 2          # rows 0..1: a target at every real position; rows 2..3: only at len-1
SEED = 20250117
ADAM_STEPS = 10


# --------------------------------------------------------------------------------------------
# Model (names follow recbole/model/layers.py and recbole/model/sequential_recommender/sasrec.py)

def gelu_erf(x):
    """RecBole's 'gelu': the exact erf form, not the tanh approximation."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class MultiHeadAttention(nn.Module):
    def __init__(self, n_heads, hidden, attn_dropout, hidden_dropout, eps):
        super().__init__()
        assert hidden % n_heads == 0
        self.num_attention_heads = n_heads
        self.attention_head_size = hidden // n_heads
        self.all_head_size = hidden
        self.sqrt_attention_head_size = math.sqrt(self.attention_head_size)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.softmax = nn.Softmax(dim=-1)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.out_dropout = nn.Dropout(hidden_dropout)

    def split_heads(self, x):  # [B, L, d] -> [B, H, L, dh]
        b, l, _ = x.shape
        return x.view(b, l, self.num_attention_heads, self.attention_head_size).permute(0, 2, 1, 3)

    def forward(self, x, mask):
        q = self.split_heads(self.query(x))
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / self.sqrt_attention_head_size
        scores = scores + mask                       # mask [B, 1, L, L], additive
        probs = self.attn_dropout(self.softmax(scores))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(x.shape[0], x.shape[1], self.all_head_size)
        out = self.out_dropout(self.dense(ctx))
        return self.LayerNorm(out + x)


class FeedForward(nn.Module):
    def __init__(self, hidden, inner, hidden_dropout, eps):
        super().__init__()
        self.dense_1 = nn.Linear(hidden, inner)
        self.dense_2 = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(hidden_dropout)

    def forward(self, x):
        y = self.dropout(self.dense_2(gelu_erf(self.dense_1(x))))
        return self.LayerNorm(y + x)


class TransformerLayer(nn.Module):
    def __init__(self, n_heads, hidden, inner, hidden_dropout, attn_dropout, eps):
        super().__init__()
        self.multi_head_attention = MultiHeadAttention(n_heads, hidden, attn_dropout, hidden_dropout, eps)
        self.feed_forward = FeedForward(hidden, inner, hidden_dropout, eps)

    def forward(self, x, mask):
        return self.feed_forward(self.multi_head_attention(x, mask))


class TransformerEncoder(nn.Module):
    def __init__(self, n_layers, **kw):
        super().__init__()
        self.layer = nn.ModuleList([TransformerLayer(**kw) for _ in range(n_layers)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class SASRec(nn.Module):
    def __init__(self, n_items, hidden, n_heads, n_layers, inner, max_len, eps,
                 hidden_dropout=0.5, attn_dropout=0.5, initializer_range=0.02):
        super().__init__()
        self.n_items = n_items
        self.initializer_range = initializer_range
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.trm_encoder = TransformerEncoder(n_layers, n_heads=n_heads, hidden=hidden, inner=inner,
                                              hidden_dropout=hidden_dropout, attn_dropout=attn_dropout,
                                              eps=eps)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(hidden_dropout)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        # RecBole: normal(0, 0.02) overwrites the whole embedding table, pad row included.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    @staticmethod
    def attention_mask(seq):
        """[B, 1, L, L] additive mask: 0 where key <= query and key item != 0, else -10000."""
        keep = (seq > 0).unsqueeze(1).unsqueeze(2)                     # [B, 1, 1, L]
        keep = torch.tril(keep.expand(-1, -1, seq.shape[-1], -1))      # [B, 1, L, L]
        return (1.0 - keep.float()) * -10000.0

    def forward(self, seq):
        """seq: long [B, L] left-aligned, 0 = pad. Returns the last block's output [B, L, d]."""
        pos = torch.arange(seq.shape[1], dtype=torch.long, device=seq.device)
        x = self.item_embedding(seq) + self.position_embedding(pos).unsqueeze(0)
        x = self.dropout(self.LayerNorm(x))
        return self.trm_encoder(x, self.attention_mask(seq))

    def loss(self, seq, target):
        """Mean softmax cross-entropy over all n_items + 1 classes at positions with target >= 0."""
        hidden = self.forward(seq)
        logits = torch.matmul(hidden, self.item_embedding.weight.t())   # [B, L, n_items + 1]
        sel = target >= 0
        return F.cross_entropy(logits[sel], target[sel], reduction="mean"), hidden


# --------------------------------------------------------------------------------------------
# safetensors writer (format written by hand: the `safetensors` package is not required)

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor of dtype float32 or int32), written in that order."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs = []
    off = 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float32:
            dt, fmt = "F32", "<f"
        elif t.dtype == torch.int32:
            dt, fmt = "I32", "<i"
        else:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        vals = t.reshape(-1).tolist()
        blob = struct.pack(f"{fmt[0]}{len(vals)}{fmt[1]}", *vals)
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


# --------------------------------------------------------------------------------------------

def setup_determinism():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)


def make_batch(gen):
    seq = torch.zeros(BATCH, MAX_LEN, dtype=torch.long)
    target = torch.full((BATCH, MAX_LEN), -1, dtype=torch.long)
    for b, n in enumerate(SEQ_LENS):
        seq[b, :n] = torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
        if b < WINDOW_ROWS:          # window style: a target at every real position
            target[b, :n] = torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
        else:                        # prefix style: only the last real position
            target[b, n - 1] = int(torch.randint(1, N_ITEMS + 1, (1,), generator=gen))
    return seq, target


def perturb(model, gen):
    """Move LayerNorm weights/biases and Linear biases off 1/0 so the test sees them."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.add_(0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.add_(0.1 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, nn.Linear):
                m.bias.add_(0.02 * torch.randn(m.bias.shape, generator=gen))


def self_checks(model, seq, hidden):
    """Causality / padding sanity: the output at real position t must not depend on later items
    or on pad contents; recomputing on the truncated prefix gives the same vector."""
    with torch.no_grad():
        for b, n in enumerate(SEQ_LENS):
            for t in range(n):
                s = torch.zeros(1, MAX_LEN, dtype=torch.long)
                s[0, :t + 1] = seq[b, :t + 1]
                h = model(s)[0, t]
                err = (h - hidden[b, t]).abs().max().item()
                assert err < 1e-5, (b, t, err)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "sasrec_golden.safetensors"))
    args = ap.parse_args()

    setup_determinism()
    model = SASRec(N_ITEMS, HIDDEN, N_HEADS, N_LAYERS, INNER, MAX_LEN, LN_EPS)
    gen = torch.Generator().manual_seed(SEED + 1)
    perturb(model, gen)
    seq, target = make_batch(gen)
    model.eval()   # dropout off everywhere (forward, gradients and the Adam steps)

    names = [n for n, _ in model.named_parameters()]
    params0 = {n: p.detach().clone() for n, p in model.named_parameters()}

    model.zero_grad()
    loss, hidden = model.loss(seq, target)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    hidden = hidden.detach().clone()
    lens = torch.tensor(SEQ_LENS)
    user_vectors = hidden[torch.arange(BATCH), lens - 1]
    self_checks(model, seq, hidden)

    # Adam from the same parameters on the same batch; loss recorded before each step.
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    adam_losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        l, _ = model.loss(seq, target)
        adam_losses.append(l.item())
        l.backward()
        opt.step()
    assert adam_losses[0] == loss.item()

    tensors = [("input.seq", seq.to(torch.int32)), ("input.target", target.to(torch.int32))]
    tensors += [("param." + n, params0[n]) for n in names]
    tensors += [("out.hidden", hidden), ("out.user_vectors", user_vectors),
                ("out.loss", loss.detach().reshape(1))]
    tensors += [("grad." + n, grads[n]) for n in names]
    tensors += [("adam.losses", torch.tensor(adam_losses, dtype=torch.float32))]
    meta = {"n_items": str(N_ITEMS), "hidden_size": str(HIDDEN), "n_heads": str(N_HEADS),
            "n_layers": str(N_LAYERS), "inner_size": str(INNER), "max_seq_length": str(MAX_LEN),
            "layer_norm_eps": "1e-12", "batch": str(BATCH)}
    out = os.path.normpath(args.out)
    size = write_safetensors(out, tensors, meta)

    print(f"wrote {out} ({size} bytes, {len(tensors)} tensors)")
    print(f"out.loss = {loss.item():.9g}")
    print("adam.losses =", " ".join(f"{v:.9g}" for v in adam_losses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
