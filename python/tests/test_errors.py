"""Wrong input, closed objects and bad files give Python exceptions, never a crash."""

import numpy as np
import pytest

import popsteer as ps


@pytest.mark.parametrize("load", [ps.Dataset.load, ps.SASRec.load, ps.SAE.load, ps.load_latents])
def test_missing_file(load, tmp_path):
    path = tmp_path / "does-not-exist"
    with pytest.raises(ps.Error, match="does-not-exist"):
        load(path)


def test_corrupt_files(stack, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    for load in (ps.SASRec.load, ps.SAE.load):
        with pytest.raises(ps.Error, match="bad.safetensors"):
            load(bad)
    csv = tmp_path / "latents.csv"
    csv.write_text("latent,cohens_d\n0,1\n")
    with pytest.raises(ps.Error, match="latents.csv"):
        ps.load_latents(csv)
    log = tmp_path / "log.inter"
    log.write_text("user_id:token\titem_id:token\n1\n")
    with pytest.raises(ps.Error, match="log.inter"):
        ps.Dataset.load(log)
    with pytest.raises(ps.Error):  # a model file given as an SAE
        ps.SAE.load(stack.model_path)
    with pytest.raises(TypeError):
        ps.SASRec.load(42)


def test_wrong_dtype(stack):
    m, sae = stack.model, stack.sae
    with pytest.raises(TypeError, match="integer"):
        m.user_vectors(np.ones((2, 5), np.float32))
    with pytest.raises(TypeError):
        m.scores([[1.5, 2.0]])
    with pytest.raises(TypeError):
        m.scores("1 2 3")
    with pytest.raises(TypeError, match="float"):
        sae.encode(np.ones((2, sae.d_in), np.int32))
    with pytest.raises(TypeError):
        sae.decode(np.ones((1, sae.n_latents), np.complex64))
    with pytest.raises(TypeError):
        ps.evaluate(stack.sae, stack.ds)
    with pytest.raises(TypeError):
        ps.SASRec.train("not a dataset", epochs=1)


def test_wrong_shape_and_values(stack):
    m, sae, ds = stack.model, stack.sae, stack.ds
    with pytest.raises(ValueError, match="shape"):
        sae.encode(np.ones((2, sae.d_in + 1), np.float32))
    with pytest.raises(ValueError):
        sae.decode(np.ones((2, 3, sae.n_latents), np.float32))
    with pytest.raises(ps.Error, match="more than k"):
        sae.decode(np.ones((1, sae.n_latents), np.float32))
    with pytest.raises(ps.Error, match="not finite"):
        sae.encode(np.full((1, sae.d_in), np.nan, np.float32))
    with pytest.raises(ValueError, match="item id"):
        m.scores([[1, ds.n_items + 1]])
    with pytest.raises(ValueError, match="item id"):
        m.user_vectors([[-3]])
    with pytest.raises(ValueError, match="length"):
        m.user_vectors([[]])
    with pytest.raises(ValueError):
        m.user_vectors(np.ones((2, 2, 2), np.int32))
    with pytest.raises(ValueError, match="left-aligned"):
        m.user_vectors(np.array([[0, 1, 2]]))
    with pytest.raises(ValueError):
        m.scores((np.ones((2, 3), np.int32), np.ones(2, np.int32)))  # a (seq, len) pair needs max_len columns
    with pytest.raises(ValueError):
        m.recommend([[1, 2]], k=0)
    with pytest.raises(ValueError):
        ps.evaluate(m, ds, split="train")
    with pytest.raises(ValueError, match="latents"):
        ps.Steerer(m, sae, {"cohens_d": np.zeros(3)}, alpha=1.0)
    t = dict(stack.latents)
    t["cohens_d"] = t["cohens_d"][:10]
    with pytest.raises(ValueError):
        ps.Steerer(m, sae, t, alpha=1.0)
    with pytest.raises(ps.Error, match="alpha|negative"):
        ps.Steerer(m, sae, stack.latents, alpha=-1.0)
    with pytest.raises(ps.Error, match="N"):
        ps.Steerer(m, sae, stack.latents, alpha=1.0, neurons=10 ** 6)
    with pytest.raises(ValueError):
        ps.Steerer(m, sae, alpha=1.0)  # alpha without a latents table
    with pytest.raises(ValueError):
        ps.Dataset.load(stack.data, kcore=-1)
    with pytest.raises(ps.Error, match="format"):
        ps.Dataset.load(stack.data, format="parquet")


def test_model_and_data_that_do_not_fit(stack, tmp_path):
    other = ps.Dataset.load(ps.synth(tmp_path / "other.inter", users=100, items=60, interactions=2000))
    with pytest.raises(ps.Error, match="items"):
        ps.evaluate(stack.model, other)
    with pytest.raises(ps.Error):
        ps.probe(stack.model, stack.sae, other)
    small = ps.SASRec.train(stack.ds, epochs=1, d=16, d_ff=32, n_layers=1, threads=2)
    with pytest.raises(ps.Error, match="SAE|model"):
        ps.Steerer(small, stack.sae)


def test_closed_objects(stack):
    ds = ps.Dataset.load(stack.data)
    m = ps.SASRec.load(stack.model_path)
    sae = ps.SAE.load(stack.sae_path)
    st = ps.Steerer(m, sae, stack.latents, alpha=1.0)
    emb = m.item_embedding
    before = st.recommend([ds.user_sequence(1)])
    m.close()
    sae.close()
    # the Steerer holds the model and the SAE it borrows; views keep their owner
    assert np.array_equal(st.recommend([ds.user_sequence(1)]), before)
    assert np.isfinite(emb).all()
    for call in (lambda: m.scores([[1]]), lambda: m.user_vectors([[1]]), lambda: m.save("x"),
                 lambda: m.item_embedding, lambda: sae.encode(np.zeros((1, 64), np.float32)),
                 lambda: ps.Steerer(m, stack.sae), lambda: ps.probe(stack.model, sae, stack.ds),
                 lambda: ps.evaluate(m, stack.ds)):
        with pytest.raises(ps.ClosedError):
            call()
    with ps.Dataset.load(stack.data) as d2:
        pass
    assert d2.closed
    for call in (d2.stats, lambda: d2.sequences, lambda: d2.prefixes("test"),
                 lambda: ps.evaluate(stack.model, d2), lambda: ps.SASRec.train(d2, epochs=1)):
        with pytest.raises(ps.ClosedError):
            call()
    st.close()
    with pytest.raises(ps.ClosedError):
        st.recommend([[1]])
    with pytest.raises(ps.ClosedError):
        ps.evaluate(st, ds)
    st.close()  # twice is fine
    assert "closed" in repr(st) and "closed" in repr(m) and "closed" in repr(d2)
