"""from_recbole: a RecBole-style PyTorch checkpoint converted and loaded (skipped without torch)."""

import numpy as np
import pytest

import popsteer as ps

from conftest import shared


def _checkpoint(torch, model_path, path, drop=None):
    """A checkpoint as RecBole saves it: {"state_dict": ..., "config": ...}, made from a model's
    safetensors (RecBole's names) read back with the safetensors layout parsed by hand."""
    import json
    import struct
    raw = open(model_path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    sd = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        a = np.frombuffer(data[b:e], np.float32).reshape(t["shape"]).copy()
        if name != drop:
            sd[name] = torch.from_numpy(a).double()  # RecBole may save any float type
    torch.save({"state_dict": sd, "config": {"n_heads": int(meta["n_heads"])}, "epoch": 3}, path)


def test_from_recbole(stack, tmp_path):
    torch = pytest.importorskip("torch", reason="from_recbole needs PyTorch (python3-torch)")
    ckpt = tmp_path / "recbole.pth"
    _checkpoint(torch, stack.model_path, ckpt)
    out = tmp_path / "converted.safetensors"
    m = ps.from_recbole(ckpt, out)
    assert m.config == stack.model.config
    seqs = [stack.ds.user_sequence(u) for u in range(1, 6)]
    assert np.array_equal(m.scores(seqs), stack.model.scores(seqs))
    assert ps.SASRec.load(out).config == stack.model.config


def test_from_recbole_rejects_an_incomplete_checkpoint(stack, tmp_path):
    torch = pytest.importorskip("torch", reason="from_recbole needs PyTorch (python3-torch)")
    ckpt = tmp_path / "broken.pth"
    _checkpoint(torch, stack.model_path, ckpt, drop="position_embedding.weight")
    out = tmp_path / "converted.safetensors"
    with pytest.raises(ps.Error, match="position_embedding"):
        ps.from_recbole(ckpt, out)
    assert not out.exists()


def test_lastfm_authors_model(tmp_path):
    """With ../shared: the authors' Last.fm model evaluates as the CLI's README says (NDCG@10 0.6273
    on validation)."""
    data = shared("data/lastfm/popsteer/lastfm.inter")
    model = shared("models/sasrec-lastfm.safetensors")
    if data is None or model is None:
        pytest.skip("../shared/data/lastfm or ../shared/models/sasrec-lastfm.safetensors is absent")
    ds = ps.Dataset.load(data)
    m = ps.SASRec.load(model)
    assert round(ps.evaluate(m, ds, split="valid")["ndcg@10"], 4) == 0.6273
