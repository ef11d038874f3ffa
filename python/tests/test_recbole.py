"""from_recbole: a RecBole-style PyTorch checkpoint converted and loaded (skipped without torch)."""

import numpy as np
import pytest

import popsteer as ps

from conftest import shared


def _checkpoint(torch, model_path, path, drop=None, config=None):
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
    cfg = {"n_heads": int(meta["n_heads"])} if config is None else config
    torch.save({"state_dict": sd, "config": cfg, "epoch": 3}, path)


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


def test_from_recbole_reads_recbole_config_without_recbole(stack, tmp_path):
    """RecBole pickles its Config object into the checkpoint; from_recbole must read n_heads from it
    without recbole installed. A 4-head model: ignoring the config would give 2 heads."""
    import sys
    import types
    torch = pytest.importorskip("torch", reason="from_recbole needs PyTorch (python3-torch)")
    m4 = ps.SASRec.train(stack.ds, epochs=1, n_heads=4, threads=2)
    path4 = tmp_path / "heads4.safetensors"
    m4.save(path4)
    names = ["recbole", "recbole.config", "recbole.config.configurator"]
    mods = {n: types.ModuleType(n) for n in names}

    class Config:
        def __init__(self, d):
            self.final_config_dict = d

        def __getitem__(self, k):
            return self.final_config_dict[k]
    Config.__module__, Config.__qualname__ = names[-1], "Config"
    mods[names[-1]].Config = Config
    sys.modules.update(mods)
    try:
        ckpt = tmp_path / "recbole4.pth"
        _checkpoint(torch, path4, ckpt, config=Config({"n_heads": 4, "hidden_size": 64, "model": "SASRec"}))
    finally:
        for n in names:
            del sys.modules[n]
    m = ps.from_recbole(ckpt, tmp_path / "converted4.safetensors")
    assert m.n_heads == 4
    seqs = [stack.ds.user_sequence(u) for u in range(1, 6)]
    assert np.array_equal(m.scores(seqs), m4.scores(seqs))


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
