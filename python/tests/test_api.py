"""Every call of the Python API on the generated stack (conftest.py), checked against the
library's documented definitions or against the CLI."""

import gc
import math
import threading
import time

import numpy as np
import pytest

import popsteer as ps
from popsteer._lib import lib


# ---- Dataset ----------------------------------------------------------------------------------

def test_dataset_stats_equal_cli(stack, cli):
    assert stack.ds.stats() == cli("data", "stats", "--data", stack.data)


def test_dataset_arrays(stack):
    ds = stack.ds
    st = ds.stats()
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (st["users"], st["items"], st["interactions"])
    assert ds.train.shape == (st["train_samples"], 2) and ds.test.shape == (ds.n_users, 2)
    assert (ds.n_head, ds.n_mid, ds.n_tail) == (st["head_items"], st["mid_items"], st["tail_items"])
    off = ds.user_offsets
    assert off[1] == 0 and off[ds.n_users + 1] == ds.n_interactions
    for u in (1, 7, ds.n_users):
        seq = ds.user_sequence(u)
        assert len(seq) == off[u + 1] - off[u]
        # the split: the last item is the test target, the one before it validation
        assert ds.test[u - 1].tolist() == [u, len(seq) - 1] and ds.valid[u - 1].tolist() == [u, len(seq) - 2]
        assert ds.targets("test")[u - 1] == seq[-1]
    # labels from training-target counts: head items are the most popular ones
    lab, pop = ds.labels, ds.popularity
    assert lab[0] == 0 and set(np.unique(lab[1:])) <= {-1, 0, 1}
    assert pop[lab == 1].min() >= pop[lab == -1].max()
    assert pop[1:].sum() == ds.n_train
    assert ds.item_tokens[0] == "[PAD]" and ds.item_id(ds.item_tokens[5]) == 5
    assert ds.user_id(ds.user_tokens[3]) == 3
    with pytest.raises(KeyError):
        ds.user_id("no such user")


def test_dataset_views_are_zero_copy_read_only_and_keep_the_data_alive(stack):
    ds = ps.Dataset.load(stack.data)
    seq, lab = ds.sequences, ds.labels
    assert not seq.flags.writeable and not seq.flags.owndata
    with pytest.raises(ValueError):
        seq[0] = 1
    assert np.shares_memory(ds.sequences, seq)  # the same library memory every time, no copy
    expected = seq.copy()
    ds.close()
    del ds
    gc.collect()
    assert np.array_equal(seq, expected) and lab.shape == (stack.ds.n_items + 1,)


def test_prefixes(stack):
    ds = stack.ds
    seq, ln = ds.prefixes("test")
    assert seq.shape == (ds.n_users, ds.max_len) and seq.dtype == np.int32
    for u in (1, 50):
        items = ds.user_sequence(u)[:-1][-ds.max_len:]
        assert ln[u - 1] == len(items) and np.array_equal(seq[u - 1, :len(items)], items)
        assert not seq[u - 1, len(items):].any()
    with pytest.raises(ps.Error, match="position"):
        ds.prefixes(np.array([[1, 10_000]]))


# ---- SASRec -----------------------------------------------------------------------------------

def test_sasrec_train_progress_and_info(stack):
    ev = stack.progress
    epochs = [p for p in ev if p.stage == "epoch"]
    batches = [p for p in ev if p.stage == "batch"]
    assert [p.epoch for p in epochs] == [1, 2] and batches and batches[-1].done == batches[-1].total
    assert stack.model.train_info["epochs"] == 2
    best = max(epochs, key=lambda p: p.value)
    assert stack.model.train_info["valid_ndcg@10"] == best.value
    assert stack.model.config["n_items"] == stack.ds.n_items


def test_user_vectors_input_forms_agree(stack):
    m, ds = stack.model, stack.ds
    seq, ln = ds.prefixes("valid")
    h = m.user_vectors((seq, ln))
    assert h.shape == (ds.n_users, m.d) and h.dtype == np.float32 and np.isfinite(h).all()
    lists = [ds.user_sequence(u)[:-2] for u in range(1, 6)]
    five = m.user_vectors(lists)
    if lib.psffi_gemm_rows_exact():  # popsteer's kernels: a row is the same bits in any batch
        assert np.array_equal(five, h[:5])
    else:  # a BLAS library backend (docs/performance.md): the same to float rounding
        np.testing.assert_allclose(five, h[:5], rtol=1e-5, atol=1e-6)
    padded = np.zeros((5, max(map(len, lists)) + 3), np.int64)  # wider than max_len: the last max_len used
    assert padded.shape[1] > m.max_len
    for i, s in enumerate(lists):
        padded[i, :len(s)] = s
    assert np.array_equal(m.user_vectors(padded), five)  # the same batch: the same bits on every backend


def test_scores_are_user_vectors_times_item_embeddings(stack):
    m, ds = stack.model, stack.ds
    seqs = [ds.user_sequence(u) for u in range(1, 9)]
    s = m.scores(seqs)
    assert s.shape == (8, ds.n_items + 1)
    ref = m.user_vectors(seqs).astype(np.float64) @ m.item_embedding.T.astype(np.float64)
    np.testing.assert_allclose(s, ref, rtol=1e-4, atol=1e-4)


def test_recommend_is_the_top_k_of_the_scores(stack):
    m, ds = stack.model, stack.ds
    seqs = [ds.user_sequence(u) for u in range(1, 21)]
    s = m.scores(seqs)
    top = m.recommend(seqs, k=10)
    for b in range(len(seqs)):
        ids = np.arange(1, ds.n_items + 1)
        order = np.lexsort((ids, -s[b, 1:]))  # score descending, then the smaller id
        assert top[b].tolist() == ids[order][:10].tolist()
    seen = m.recommend(seqs, k=10, exclude_seen=True)
    for b, sq in enumerate(seqs):
        assert not set(seen[b].tolist()) & set(sq.tolist())
    # as a padded array wider than max_len: the same lists, the whole rows excluded
    wide = np.zeros((len(seqs), max(map(len, seqs))), np.int32)
    for b, sq in enumerate(seqs):
        wide[b, :len(sq)] = sq
    assert wide.shape[1] > m.max_len
    assert np.array_equal(m.recommend(wide, k=10, exclude_seen=True), seen)


def test_sasrec_save_load_roundtrip(stack, tmp_path):
    m2 = ps.SASRec.load(stack.model_path)
    assert m2.config == stack.model.config
    assert np.array_equal(m2.item_embedding, stack.model.item_embedding)
    seqs = [stack.ds.user_sequence(u) for u in range(1, 4)]
    assert np.array_equal(m2.scores(seqs), stack.model.scores(seqs))


# ---- SAE --------------------------------------------------------------------------------------

def test_sae_encode_decode_follow_the_definitions(stack):
    sae, m = stack.sae, stack.model
    h = m.user_vectors(stack.ds.prefixes("test"))[:64]
    z = sae.encode(h)
    assert z.shape == (64, sae.n_latents) and ((z != 0).sum(axis=1) <= sae.k).all()
    pre = (h.astype(np.float64) - sae.b_dec) @ sae.W_enc.T.astype(np.float64) + sae.b_enc
    for b in range(64):
        act = np.flatnonzero(z[b])
        ref = np.maximum(pre[b], 0)
        np.testing.assert_allclose(z[b, act], ref[act], rtol=1e-4, atol=1e-5)
        kth = np.sort(ref)[-sae.k]
        assert (ref[act] >= kth - 1e-4).all()  # the TopK: nothing outside beats what is kept
    out = sae.decode(z)
    np.testing.assert_allclose(out, z.astype(np.float64) @ sae.W_dec + sae.b_dec, rtol=1e-4, atol=1e-4)
    assert sae.train_info["epochs"] == 2


def test_sae_save_load_and_views(stack):
    sae2 = ps.SAE.load(stack.sae_path)
    assert (sae2.d_in, sae2.n_latents, sae2.k) == (stack.model.d, 256, 8)
    for t in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert np.array_equal(getattr(sae2, t), getattr(stack.sae, t))
        assert not getattr(sae2, t).flags.writeable


# ---- probe, latents, steering -------------------------------------------------------------------

def test_probe_table(stack):
    t = stack.latents
    m = stack.sae.n_latents
    assert t["latent"].tolist() == list(range(m)) and t["top_items"].shape == (m, 10)
    assert t["n_synthetic"] == stack.ds.n_train
    pooled = np.sqrt((t["std_pop"] ** 2 + t["std_unpop"] ** 2) / 2)
    ok = pooled > 0
    np.testing.assert_allclose(t["cohens_d"][ok], ((t["mean_pop"] - t["mean_unpop"]) / pooled)[ok], rtol=1e-9)
    assert ((t["fire_rate"] >= 0) & (t["fire_rate"] <= 1)).all()


def test_latents_csv_roundtrip(stack):
    back = ps.load_latents(stack.latents_path, stack.sae.n_latents)
    for c in ("cohens_d", "mean_pop", "std_pop", "mean_unpop", "std_unpop", "fire_rate"):
        np.testing.assert_allclose(back[c], stack.latents[c], rtol=1e-8, atol=1e-12)
    header = open(stack.latents_path).readline().strip()
    assert header == "latent,cohens_d,mean_pop,std_pop,mean_unpop,std_unpop,fire_rate,top_items"


def test_steerer_plan_and_alpha_zero(stack):
    m, sae, t = stack.model, stack.sae, stack.latents
    st = ps.Steerer(m, sae, t, alpha=1.5, neurons=32)
    p = st.plan
    order = np.argsort(-np.abs(t["cohens_d"]), kind="stable")[:32]
    assert p["latent"].tolist() == order.tolist() and p["weight"].max() == pytest.approx(1.5)
    seqs = [stack.ds.user_sequence(u) for u in range(1, 9)]
    recon = ps.Steerer(m, sae)  # the SAE-reconstructed model
    assert recon.plan["latent"].size == 0
    zero = ps.Steerer(m, sae, t, alpha=0.0)
    assert np.array_equal(zero.scores(seqs), recon.scores(seqs))
    assert not np.array_equal(st.scores(seqs), recon.scores(seqs))
    from_csv = ps.Steerer(m, sae, stack.latents_path, alpha=1.5, neurons=32)
    np.testing.assert_allclose(from_csv.scores(seqs), st.scores(seqs), rtol=1e-6, atol=1e-6)


def test_steering_reduces_popularity_bias(stack):
    base = ps.evaluate(stack.model, stack.ds)
    steered = ps.evaluate(ps.Steerer(stack.model, stack.sae, stack.latents, alpha=3.0), stack.ds)
    assert steered["arp@10"] < base["arp@10"]


# ---- evaluation and recommendation against the CLI --------------------------------------------

@pytest.mark.parametrize("split,k,mask", [("test", 10, False), ("valid", 5, True)])
def test_evaluate_equals_cli_eval_json_sasrec(stack, cli, split, k, mask):
    py = ps.evaluate(stack.model, stack.ds, split=split, k=k, mask_seen=mask)
    args = ["eval", "--data", stack.data, "--model", stack.model_path, "--split", split, "--k", k]
    assert py == cli(*args, *(["--mask-seen"] if mask else []))
    assert set(py) >= {"users", f"ndcg@{k}", f"gini@{k}", f"ilad@{k}"} and py["users"] == stack.ds.n_users


@pytest.mark.parametrize("alpha,neurons", [(None, None), (0.0, None), (1.5, 32)])
def test_evaluate_equals_cli_eval_json_steered(stack, cli, alpha, neurons):
    if alpha is None:
        st, extra = ps.Steerer(stack.model, stack.sae), []
    else:
        st = ps.Steerer(stack.model, stack.sae, stack.latents, alpha=alpha, neurons=neurons)
        extra = ["--latents", stack.latents_path, "--alpha", alpha] + (["--neurons", neurons] if neurons else [])
    py = ps.evaluate(st, stack.ds)
    assert py == cli("eval", "--data", stack.data, "--model", stack.model_path, "--sae", stack.sae_path, *extra)


@pytest.mark.parametrize("steered,mask", [(False, False), (True, False), (True, True)])
def test_recommend_equals_cli_recommend(stack, cli, steered, mask):
    ds = stack.ds
    rec = ps.Steerer(stack.model, stack.sae, stack.latents, alpha=1.5, neurons=32) if steered else stack.model
    extra = ["--sae", stack.sae_path, "--latents", stack.latents_path, "--alpha", 1.5, "--neurons", 32] \
        if steered else []
    users = [1, 2, 77, ds.n_users]
    top = rec.recommend([ds.user_sequence(u) for u in users], k=10, exclude_seen=mask)
    extra += ["--mask-seen"] if mask else []
    scores = rec.scores([ds.user_sequence(u) for u in users])
    for row, u in enumerate(users):
        out = cli("recommend", "--data", stack.data, "--model", stack.model_path, "--user", ds.user_tokens[u],
                  *extra)
        assert [o["item"] for o in out] == [ds.item_tokens[i] for i in top[row] if i]  # 0 pads a short list
        for o in out:
            assert o["score"] == pytest.approx(float(scores[row, ds.item_id(o["item"])]), rel=1e-5, abs=1e-6)


# ---- training control: stop, errors in callbacks, Ctrl-C, the GIL ---------------------------------

def test_progress_returning_true_stops_training(stack):
    seen = []
    m = ps.SASRec.train(stack.ds, epochs=5, batch_targets=512, threads=2,
                        progress=lambda p: seen.append(p) or p.stage == "batch" and p.done == 2)
    assert m.train_info == {"stopped": True}
    assert [(p.stage, p.done) for p in seen] == [("batch", 1), ("batch", 2)]
    assert np.isfinite(m.scores([stack.ds.user_sequence(1)])).all()


def test_exception_in_progress_is_raised(stack):
    def boom(p):
        raise RuntimeError("from the callback")
    with pytest.raises(RuntimeError, match="from the callback"):
        ps.SAE.train(stack.model, stack.ds, k=8, scale=4, epochs=2, batch=256, progress=boom)


def test_ctrl_c_interrupts_training_between_batches(stack):
    import os
    import signal
    seen = []

    def press_ctrl_c(p):
        seen.append(p)
        if len(seen) == 1:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        ps.SASRec.train(stack.ds, epochs=5, batch_targets=512, threads=2, progress=press_ctrl_c)
    # the signal arrived during the first batch's callback; the library stopped before the next one
    assert len(seen) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        ps.SAE.train(stack.model, stack.ds, k=8, scale=4, epochs=3, batch=256,
                     progress=lambda p: os.kill(os.getpid(), signal.SIGINT))


def test_ctrl_c_with_a_custom_handler(stack):
    """A program's own SIGINT handler still decides: training stops before the next batch and the
    handler is called once, after it."""
    import os
    import signal
    calls = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        seen = []
        m = ps.SASRec.train(stack.ds, epochs=5, batch_targets=512, threads=2,
                            progress=lambda p: seen.append(p) or os.kill(os.getpid(), signal.SIGINT))
        assert calls == [signal.SIGINT] and len(seen) == 1 and m.train_info == {"stopped": True}
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # still the program's
    finally:
        signal.signal(signal.SIGINT, old)


def test_long_calls_release_the_gil(stack):
    seq, ln = stack.ds.prefixes("train")
    t = time.perf_counter()
    stack.model.user_vectors((seq, ln))
    reps = int(min(8, max(1, 0.3 / (time.perf_counter() - t))))  # one library call of ~0.3 s
    big = (np.tile(seq, (reps, 1)), np.tile(ln, reps))
    span = []
    started = threading.Event()

    def work():
        started.set()
        t0 = time.perf_counter()
        stack.model.user_vectors(big)
        span.extend([t0, time.perf_counter()])
    t = threading.Thread(target=work)
    ticks = []
    t.start()
    started.wait()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.0005)
    t.join()
    t0, t1 = span
    q = (t1 - t0) / 4
    middle = [x for x in ticks if t0 + q < x < t1 - q]
    # with the GIL held for the whole call the main thread could not run in the middle of it (checked:
    # loading the library with ctypes.PyDLL, which keeps the GIL, gives no tick there)
    assert t1 - t0 > 0.02 and len(middle) >= 3, (t1 - t0, len(middle))


def test_set_threads():
    n = ps.set_threads(2)
    assert n == 2
    with pytest.raises(ValueError):
        ps.set_threads(0)


def test_quickstart_runs(stack, tmp_path):
    import pathlib
    import subprocess
    import sys
    qs = pathlib.Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    import os
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pathlib.Path(ps.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    if "POPSTEER_LIB" in env:
        env["POPSTEER_LIB"] = os.path.abspath(env["POPSTEER_LIB"])
    r = subprocess.run([sys.executable, str(qs), str(stack.data), "1"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert "PopSteer" in r.stdout and "top-10" in r.stdout
    assert math.isfinite(float(r.stdout.split("NDCG@10")[1].split()[0]))
