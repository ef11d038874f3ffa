"""The Python API over libpopsteer (see docs/python.md).

Memory: every C object is owned by a _Handle, freed when the last Python reference to it goes.
Wrappers (Dataset, SASRec, SAE, Steerer) hold one; so do the numpy views they hand out (zero-copy,
read-only) and the objects that borrow them (a Steerer holds its model's and SAE's handles), so
close() on a wrapper never leaves a view or another object dangling: it only makes the wrapper
itself unusable (ClosedError).
"""

import collections
import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import types

import numpy as np

from . import _lib
from ._lib import Error, lib

__all__ = ["Error", "ClosedError", "Progress", "Dataset", "SASRec", "SAE", "Steerer", "probe", "evaluate",
           "save_latents", "load_latents", "synth", "set_threads", "from_recbole"]


class ClosedError(ValueError):
    """An operation on a closed object."""


Progress = collections.namedtuple("Progress", "stage epoch done total value")
Progress.__doc__ = ("Training progress: stage 'batch' (done/total batches of the epoch, value = batch loss) or "
                    "'epoch' (done/total epochs, value = validation NDCG@10 for SASRec, validation FVU for the SAE)")


def _path(p, what):
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise TypeError(f"{what}: expected a path, got {type(p).__name__}")
    return os.fsencode(p)


class _Handle:
    """Owns one C object and frees it when nothing refers to it any more."""

    def __init__(self, ptr, free, deps=()):
        self.ptr = ptr
        self._free = free
        self.deps = tuple(deps)  # handles whose objects this one borrows: kept alive with it

    def __del__(self):
        if self.ptr:
            self._free(self.ptr)
            self.ptr = None


class _View:
    """__array_interface__ over library memory; the array keeps this, and so the owner, alive."""

    def __init__(self, owner, addr, shape, dtype):
        self._owner = owner
        self.__array_interface__ = {"version": 3, "shape": tuple(shape), "typestr": np.dtype(dtype).str,
                                    "data": (addr, True)}


def _view(owner, addr, shape, dtype):
    if not addr or int(np.prod(shape)) == 0:
        return np.empty(shape, dtype)
    a = np.asarray(_View(owner, addr, shape, dtype))
    assert not a.flags.writeable
    return a


class _Object:
    _h = None

    def _ptr(self):
        if self._h is None or not self._h.ptr:
            raise ClosedError(f"{type(self).__name__} is closed")
        return self._h.ptr

    def _handle(self):
        self._ptr()
        return self._h

    def close(self):
        """Releases this object (views and objects that use it keep the memory until they go)."""
        self._h = None

    @property
    def closed(self):
        return self._h is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def set_threads(n):
    """OpenMP/OpenBLAS threads for the library's later calls from this thread; returns the count."""
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    return lib.psffi_threads(int(n) if n else 0)


def synth(path, users=2000, items=1500, interactions=80000, seed=42):
    """Writes a generated interaction log (RecBole atomic format), as `popsteer data synth`."""
    err = _lib.new_err()
    for name, v in (("users", users), ("items", items), ("interactions", interactions)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    _lib.check(lib.psffi_synth(_path(path, "synth"), users, items, interactions, seed, err), err)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------
# Input checking


def _int_array(a, what):
    a = np.asarray(a)
    if a.size == 0 and a.dtype.kind == "f":
        a = a.astype(np.int64)  # [] is a float array to numpy; an empty list of ids is still ids
    if a.dtype.kind not in "iu" or a.dtype == np.bool_:
        raise TypeError(f"{what}: expected integer item ids, got dtype {a.dtype}")
    return a


def _float_matrix(a, cols, what):
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise TypeError(f"{what}: expected a float array, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{what}: expected shape (n, {cols}), got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _sequences(sequences, L, n_items):
    """(seq [B, L] int32, len [B] int32) from a list of item-id sequences (oldest first; the last L
    items of each are used), a 2-D array of left-aligned rows padded with 0, or a (seq, len) pair
    in the library's layout (Dataset.prefixes)."""
    if isinstance(sequences, tuple) and len(sequences) == 2:
        seq, ln = (_int_array(x, "sequences") for x in sequences)
        if seq.ndim != 2 or seq.shape[1] != L or ln.shape != (seq.shape[0],):
            raise ValueError(f"sequences: a (seq, len) pair needs seq of shape (B, {L}) and len of shape (B,), "
                             f"got {seq.shape} and {ln.shape}")
        rows = None
    elif isinstance(sequences, np.ndarray) and sequences.ndim >= 1 and sequences.dtype != object:
        a = _int_array(sequences, "sequences")
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"sequences: expected a 2-D array (B, length), got shape {a.shape}")
        nz = a != 0
        ln = nz.sum(axis=1)
        if not np.array_equal(nz, np.arange(a.shape[1])[None, :] < ln[:, None]):
            raise ValueError("sequences: rows must be left-aligned, items first and padding (0) after them")
        rows = None if a.shape[1] <= L else [r[:n] for r, n in zip(a, ln)]
        if rows is None:
            seq = np.zeros((a.shape[0], L), np.int64)
            seq[:, :a.shape[1]] = a
    else:
        if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
            raise TypeError(f"sequences: expected a list of item-id sequences or an integer array, got "
                            f"{type(sequences).__name__}")
        rows = [_int_array(s, f"sequence {i}") for i, s in enumerate(sequences)]
        for i, r in enumerate(rows):
            if r.ndim != 1:
                raise ValueError(f"sequence {i}: expected a 1-D list of item ids, got shape {r.shape}")
    if rows is not None:
        seq = np.zeros((len(rows), L), np.int64)
        ln = np.zeros(len(rows), np.int64)
        for i, r in enumerate(rows):
            r = r[-L:]
            seq[i, :len(r)] = r
            ln[i] = len(r)
    if seq.shape[0] == 0:
        raise ValueError("sequences: no sequences given")
    if ln.min() < 1 or ln.max() > L:
        i = int(np.argmin(ln)) if ln.min() < 1 else int(np.argmax(ln))
        raise ValueError(f"sequences: sequence {i} has length {int(ln[i])}, expected 1..{L}")
    if seq.size and (seq.min() < 0 or seq.max() > n_items):
        bad = int(seq.min()) if seq.min() < 0 else int(seq.max())
        raise ValueError(f"sequences: item id {bad} is not in 1..{n_items}")
    return np.ascontiguousarray(seq, np.int32), np.ascontiguousarray(ln, np.int32)


# ---------------------------------------------------------------------------------------------
# Training: progress, stop requests and Ctrl-C


@contextlib.contextmanager
def _interruptible():
    """While training runs in the main thread, SIGINT only sets a flag that the progress callback
    reports to the library, which stops before its next batch; KeyboardInterrupt is raised after."""
    state = {"interrupted": False, "stopped": False, "error": None}
    main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGINT) if main else None
    ours = main and old not in (signal.SIG_IGN, None)
    if ours:
        def on_sigint(signum, frame):
            state["interrupted"] = True
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        if ours:
            signal.signal(signal.SIGINT, old)
    if state["interrupted"]:
        if callable(old):  # Python's default handler raises KeyboardInterrupt; a custom one decides
            old(signal.SIGINT, None)
        else:
            raise KeyboardInterrupt


def _progress_cb(user_cb, state):
    if user_cb is not None and not callable(user_cb):
        raise TypeError(f"progress: expected a callable, got {type(user_cb).__name__}")

    def cb(ctx, stage, epoch, done, total, value):
        try:
            if not state["interrupted"] and user_cb is not None and user_cb(
                    Progress(stage.decode(), epoch, done, total, value)):
                state["stopped"] = True
            return int(state["interrupted"] or state["stopped"])
        except BaseException as e:  # never let an exception unwind through C
            state["error"] = e
            return 1
    return _lib.PROGRESS(cb)


def _finish_training(ok, err, state):
    if state["error"] is not None:
        raise state["error"]
    if not ok and not (state["interrupted"] or state["stopped"]):
        _lib.fail(err)


# ---------------------------------------------------------------------------------------------
# Dataset


_SPLITS = {"valid": 0, "validation": 0, "test": 1}


def _split(name):
    if name not in _SPLITS:
        raise ValueError(f"split must be 'valid' or 'test', got {name!r}")
    return _SPLITS[name]


class Dataset(_Object):
    """An interaction log loaded and split as RecBole does (SPEC §1). Item ids 1..n_items (0 is
    padding) and user ids 1..n_users; the raw tokens are item_tokens / user_tokens."""

    @classmethod
    def load(cls, path, format=None, kcore=None, rating_threshold=None, max_len=50, head_share=0.2,
             tail_share=0.2, user_col=None, item_col=None, time_col=None, rating_col=None):
        err = _lib.new_err()
        enc = lambda s: None if s is None else str(s).encode()  # noqa: E731
        if kcore is not None and (not isinstance(kcore, (int, np.integer)) or kcore < 0):
            raise ValueError(f"kcore must be a non-negative integer, got {kcore!r}")
        if not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        ptr = lib.psffi_dataset_load(_path(path, "Dataset.load"), enc(format), kcore or 0,
                                     rating_threshold is not None, float(rating_threshold or 0), max_len,
                                     float(head_share), float(tail_share), enc(user_col), enc(item_col),
                                     enc(time_col), enc(rating_col), err)
        if not ptr:
            _lib.fail(err)
        self = cls.__new__(cls)
        self._h = _Handle(ptr, lib.psffi_dataset_free)
        sizes = (ctypes.c_int64 * 8)()
        lib.psffi_dataset_sizes(ptr, sizes)
        (self.n_users, self.n_items, self.n_interactions, self.max_len, self.n_train, self.n_head, self.n_mid,
         self.n_tail) = (int(x) for x in sizes)
        self._tokens = {}
        return self

    def __repr__(self):
        state = "closed" if self.closed else f"{self.n_users} users, {self.n_items} items, {self.n_interactions} " \
                                             f"interactions"
        return f"<popsteer.Dataset {state}>"

    def _array(self, which, shape, dtype):
        return _view(self._handle(), lib.psffi_dataset_array(self._ptr(), which), shape, dtype)

    @property
    def sequences(self):
        """Every user's items, chronological, one int32 array (users in order; see user_offsets)."""
        return self._array(0, (self.n_interactions,), np.int32)

    @property
    def user_offsets(self):
        """int64 [n_users + 2]: user u's items are sequences[user_offsets[u]:user_offsets[u + 1]]."""
        return self._array(1, (self.n_users + 2,), np.int64)

    @property
    def labels(self):
        """int8 [n_items + 1]: +1 head, 0 mid, -1 tail (index 0 = padding)."""
        return self._array(2, (self.n_items + 1,), np.int8)

    @property
    def popularity(self):
        """int64 [n_items + 1]: training samples whose target is the item (what the labels use)."""
        return self._array(3, (self.n_items + 1,), np.int64)

    @property
    def train(self):
        """int32 [n_train, 2]: (user, position of the target) of every training sample."""
        return self._array(4, (self.n_train, 2), np.int32)

    @property
    def valid(self):
        return self._array(5, (self.n_users, 2), np.int32)

    @property
    def test(self):
        return self._array(6, (self.n_users, 2), np.int32)

    def split(self, name):
        """The samples of 'valid' or 'test' (one per user), [n_users, 2] (user, position)."""
        return self.valid if _split(name) == 0 else self.test

    def user_sequence(self, user):
        """User `user`'s whole history (item ids, oldest first): a view."""
        u = int(user)
        if not 1 <= u <= self.n_users:
            raise IndexError(f"user {u} is not in 1..{self.n_users}")
        off = self.user_offsets
        return self.sequences[off[u]:off[u + 1]]

    def prefixes(self, samples):
        """(seq [n, max_len] int32, len [n] int32): the left-aligned prefixes of a split ('train',
        'valid', 'test') or of samples [n, 2] (user, position), as the library's scorers get them."""
        if isinstance(samples, str):
            samples = self.train if samples == "train" else self.split(samples)
        s = np.ascontiguousarray(_int_array(samples, "samples"), dtype=np.int32)
        if s.ndim != 2 or s.shape[1] != 2:
            raise ValueError(f"samples: expected shape (n, 2), got {s.shape}")
        seq = np.zeros((s.shape[0], self.max_len), np.int32)
        ln = np.zeros(s.shape[0], np.int32)
        err = _lib.new_err()
        _lib.check(lib.psffi_dataset_prefixes(self._ptr(), s.ctypes.data, s.shape[0], self.max_len, seq.ctypes.data,
                                              ln.ctypes.data, err), err)
        return seq, ln

    def targets(self, samples):
        """The target item of each sample (or of a split's samples)."""
        if isinstance(samples, str):
            samples = self.train if samples == "train" else self.split(samples)
        s = _int_array(samples, "samples")
        off = self.user_offsets
        return self.sequences[off[s[:, 0]] + s[:, 1]].astype(np.int32)

    def stats(self):
        """The `popsteer data stats --json` dictionary."""
        err = _lib.new_err()
        out = ctypes.c_void_p()
        _lib.check(lib.psffi_dataset_stats_json(self._ptr(), ctypes.byref(out), err), err)
        return json.loads(_lib.take_string(out))

    def _token_list(self, kind):
        if kind not in self._tokens:
            f, lo, hi = ((lib.psffi_dataset_user_token, 1, self.n_users) if kind == "user"
                         else (lib.psffi_dataset_item_token, 0, self.n_items))
            p = self._ptr()
            toks = [f(p, i).decode("utf-8", "replace") for i in range(lo, hi + 1)]
            self._tokens[kind] = ([""] + toks) if kind == "user" else toks
        return self._tokens[kind]

    @property
    def user_tokens(self):
        """Raw user ids as in the file, by user id (index 0 = '')."""
        return self._token_list("user")

    @property
    def item_tokens(self):
        """Raw item ids as in the file, by item id (index 0 = '[PAD]')."""
        return self._token_list("item")

    def user_id(self, token):
        """The user id of a raw user token (KeyError when the dataset has none)."""
        if "user_map" not in self._tokens:
            self._tokens["user_map"] = {t: i for i, t in enumerate(self.user_tokens) if i}
        return self._tokens["user_map"][str(token)]

    def item_id(self, token):
        if "item_map" not in self._tokens:
            self._tokens["item_map"] = {t: i for i, t in enumerate(self.item_tokens) if i}
        return self._tokens["item_map"][str(token)]


# ---------------------------------------------------------------------------------------------
# Recommenders: scoring through a library scorer


class _Recommender(_Object):
    _scorer_h = None

    def _scorer(self):
        raise NotImplementedError

    def _model(self):
        raise NotImplementedError

    def scores(self, sequences):
        """float32 [B, n_items + 1]: every item's score for each sequence (column 0 is the padding
        item, never recommended)."""
        m = self._model()
        seq, ln = _sequences(sequences, m.max_len, m.n_items)
        sc = self._scorer()
        out = np.empty((seq.shape[0], m.n_items + 1), np.float32)
        err = _lib.new_err()
        with self._lock:
            _lib.check(lib.psffi_scorer_scores(sc.ptr, seq.ctypes.data, ln.ctypes.data, seq.shape[0], out.ctypes.data,
                                               err), err)
        return out

    def recommend(self, sequences, k=10, exclude_seen=False):
        """int32 [B, k]: the k best items for each sequence, best first (score descending, the
        smaller id first on ties; 0 pads when fewer items are eligible). exclude_seen leaves out
        the items of the given sequences."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        m = self._model()
        s = self.scores(sequences)  # checks the sequences
        ex = None
        if exclude_seen:  # every item of each given sequence, also those before its last max_len
            if isinstance(sequences, tuple) and len(sequences) == 2:
                seq, ln = (np.asarray(x) for x in sequences)
                rows = [seq[b, :ln[b]] for b in range(seq.shape[0])]
            elif isinstance(sequences, np.ndarray) and sequences.dtype != object:
                a = sequences if sequences.ndim == 2 else sequences[None, :]
                rows = [r[r != 0] for r in a]
            else:
                rows = [np.asarray(r, np.int64) for r in sequences]
            ex = np.zeros((len(rows), m.n_items + 1), np.uint8)
            for b, r in enumerate(rows):
                ex[b, r] = 1
        out = np.zeros((s.shape[0], k), np.int32)
        lib.psffi_topk(s.ctypes.data, s.shape[0], m.n_items, int(k), None if ex is None else ex.ctypes.data,
                       out.ctypes.data)
        return out


class SASRec(_Recommender):
    """SASRec (SPEC §2) with RecBole's parameter names; safetensors checkpoints."""

    def _init(self, ptr):
        self._h = _Handle(ptr, lib.ps_sasrec_free)
        cfg = (ctypes.c_int64 * 6)()
        drop = (ctypes.c_double * 2)()
        lib.psffi_sasrec_config(ptr, cfg, drop)
        self.n_items, self.d, self.n_layers, self.n_heads, self.d_ff, self.max_len = (int(x) for x in cfg)
        self.hidden_dropout, self.attn_dropout = drop[0], drop[1]
        self._lock = threading.Lock()
        self.train_info = None
        return self

    @classmethod
    def load(cls, path):
        err = _lib.new_err()
        ptr = lib.psffi_sasrec_load(_path(path, "SASRec.load"), err)
        if not ptr:
            _lib.fail(err)
        return cls.__new__(cls)._init(ptr)

    @classmethod
    def train(cls, dataset, epochs=300, min_epochs=50, patience=10, lr=1e-3, batch_targets=4096, micro_batch=256,
              layout="window", seed=42, d=64, n_layers=2, n_heads=2, d_ff=256, hidden_dropout=0.5,
              attn_dropout=0.5, threads=None, progress=None):
        """Trains a fresh model on dataset (as `popsteer train`): Adam, validation NDCG@10 after
        every epoch, early stopping (not before min_epochs) keeping the best weights. progress(p)
        gets a Progress after every batch and epoch; returning True stops training there (the
        best weights so far are kept). Ctrl-C stops it before the next batch (KeyboardInterrupt)."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset: expected a popsteer.Dataset, got {type(dataset).__name__}")
        if layout not in ("window", "prefix"):
            raise ValueError(f"layout must be 'window' or 'prefix', got {layout!r}")
        for name, v in (("epochs", epochs), ("patience", patience), ("batch_targets", batch_targets),
                        ("micro_batch", micro_batch), ("d", d), ("n_layers", n_layers), ("n_heads", n_heads),
                        ("d_ff", d_ff)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if threads is not None:
            set_threads(threads)
        err = _lib.new_err()
        ds = dataset._handle()
        ptr = lib.psffi_sasrec_new(ds.ptr, d, n_layers, n_heads, d_ff, float(hidden_dropout), float(attn_dropout),
                                   seed, err)
        if not ptr:
            _lib.fail(err)
        self = cls.__new__(cls)._init(ptr)
        res = (ctypes.c_double * 4)()
        with _interruptible() as state:
            cb = _progress_cb(progress, state)
            ok = lib.psffi_sasrec_train(ptr, ds.ptr, epochs, min(min_epochs, epochs), patience, float(lr),
                                        batch_targets, micro_batch, layout == "prefix", seed, 0, cb, None, res,
                                        err) == 0
        _finish_training(ok, err, state)
        self.train_info = {"epochs": int(res[0]), "best_epoch": int(res[1]), "valid_ndcg@10": res[2],
                           "seconds": res[3]} if ok else {"stopped": True}
        return self

    def __repr__(self):
        return "<popsteer.SASRec closed>" if self.closed else \
            f"<popsteer.SASRec {self.n_items} items, d {self.d}, {self.n_layers} layers, max_len {self.max_len}>"

    @property
    def config(self):
        return {"n_items": self.n_items, "hidden_size": self.d, "n_layers": self.n_layers, "n_heads": self.n_heads,
                "inner_size": self.d_ff, "max_seq_length": self.max_len, "hidden_dropout_prob": self.hidden_dropout,
                "attn_dropout_prob": self.attn_dropout}

    @property
    def item_embedding(self):
        """float32 [n_items + 1, d] (row 0 = padding): a read-only view of the model's weights."""
        return _view(self._handle(), lib.psffi_sasrec_item_embedding(self._ptr()), (self.n_items + 1, self.d),
                     np.float32)

    def save(self, path):
        err = _lib.new_err()
        _lib.check(lib.psffi_sasrec_save(self._ptr(), _path(path, "SASRec.save"), err), err)

    def user_vectors(self, sequences):
        """float32 [B, d]: eval-mode user vectors (last position's hidden state) of each sequence."""
        seq, ln = _sequences(sequences, self.max_len, self.n_items)
        out = np.empty((seq.shape[0], self.d), np.float32)
        err = _lib.new_err()
        _lib.check(lib.psffi_sasrec_user_vectors(self._ptr(), seq.ctypes.data, ln.ctypes.data, seq.shape[0],
                                                 out.ctypes.data, err), err)
        return out

    def _model(self):
        self._ptr()
        return self

    def _scorer(self):
        h = self._handle()
        if self._scorer_h is None or self._scorer_h.deps[0] is not h:
            err = _lib.new_err()
            p = lib.psffi_scorer_new(h.ptr, None, None, None, None, 0, 0.0, 256, err)
            if not p:
                _lib.fail(err)
            self._scorer_h = _Handle(p, lib.psffi_scorer_free, (h,))
        return self._scorer_h

    def close(self):
        self._scorer_h = None
        super().close()


class SAE(_Object):
    """The TopK sparse autoencoder on a model's user vectors (SPEC §3)."""

    def _init(self, ptr):
        self._h = _Handle(ptr, lib.psffi_sae_free)
        cfg = (ctypes.c_int64 * 4)()
        lib.psffi_sae_config(ptr, cfg)
        self.d_in, self.n_latents, self.k, self.k_aux = (int(x) for x in cfg)
        self.train_info = None
        return self

    @classmethod
    def load(cls, path):
        err = _lib.new_err()
        ptr = lib.psffi_sae_load(_path(path, "SAE.load"), err)
        if not ptr:
            _lib.fail(err)
        return cls.__new__(cls)._init(ptr)

    @classmethod
    def train(cls, model, dataset, k=32, scale=64, k_aux=128, epochs=50, patience=3, lr=1e-3, batch=4096, seed=42,
              threads=None, progress=None):
        """Trains a fresh SAE on the model's user vectors of every training prefix, early stopping on
        the validation prefixes' FVU (as `popsteer sae train`). progress and Ctrl-C as SASRec.train."""
        if not isinstance(model, SASRec) or not isinstance(dataset, Dataset):
            raise TypeError("SAE.train(model, dataset): expected a popsteer.SASRec and a popsteer.Dataset")
        for name, v in (("k", k), ("scale", scale), ("k_aux", k_aux), ("epochs", epochs), ("patience", patience),
                        ("batch", batch)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if threads is not None:
            set_threads(threads)
        err = _lib.new_err()
        res = (ctypes.c_double * 3)()
        m, ds = model._handle(), dataset._handle()
        with _interruptible() as state:
            cb = _progress_cb(progress, state)
            ptr = lib.psffi_sae_train(m.ptr, ds.ptr, k, scale, k_aux, epochs, patience, float(lr), batch, seed, cb,
                                      None, res, err)
        _finish_training(bool(ptr), err, state)
        if not ptr:
            raise Error("SAE training stopped by the progress callback before an SAE was kept")
        self = cls.__new__(cls)._init(ptr)
        self.train_info = {"epochs": int(res[0]), "best_epoch": int(res[1]), "valid_fvu": res[2]}
        return self

    def __repr__(self):
        return "<popsteer.SAE closed>" if self.closed else \
            f"<popsteer.SAE {self.d_in} -> {self.n_latents} latents, k {self.k}>"

    def save(self, path):
        err = _lib.new_err()
        _lib.check(lib.psffi_sae_save(self._ptr(), _path(path, "SAE.save"), err), err)

    def _tensor(self, which, shape):
        return _view(self._handle(), lib.psffi_sae_tensor(self._ptr(), which), shape, np.float32)

    W_enc = property(lambda self: self._tensor(0, (self.n_latents, self.d_in)), doc="[m, d] (read-only view)")
    b_enc = property(lambda self: self._tensor(1, (self.n_latents,)), doc="[m] (read-only view)")
    W_dec = property(lambda self: self._tensor(2, (self.n_latents, self.d_in)), doc="[m, d] (read-only view)")
    b_dec = property(lambda self: self._tensor(3, (self.d_in,)), doc="[d] (read-only view)")

    def encode(self, h):
        """float32 [B, m]: z = TopK_k(ReLU((h - b_dec) W_enc^T + b_enc)), zeros off the TopK."""
        h = _float_matrix(h, self.d_in, "encode")
        z = np.empty((h.shape[0], self.n_latents), np.float32)
        err = _lib.new_err()
        _lib.check(lib.psffi_sae_encode(self._ptr(), h.ctypes.data, h.shape[0], z.ctypes.data, err), err)
        return z

    def decode(self, z):
        """float32 [B, d]: z W_dec + b_dec, for z with at most k nonzero latents per row."""
        z = _float_matrix(z, self.n_latents, "decode")
        out = np.empty((z.shape[0], self.d_in), np.float32)
        err = _lib.new_err()
        _lib.check(lib.psffi_sae_decode(self._ptr(), z.ctypes.data, z.shape[0], out.ctypes.data, err), err)
        return out


# ---------------------------------------------------------------------------------------------
# Probe and steering

LATENT_COLUMNS = ("cohens_d", "mean_pop", "std_pop", "mean_unpop", "std_unpop", "fire_rate")


def probe(model, sae, dataset, cap=0, seed=42, n_top=10):
    """Cohen's d of every SAE latent between synthetic popular-only and long-tail-only users
    (SPEC §4), as `popsteer probe`: a dict of arrays, one entry per latent: latent, cohens_d,
    mean_pop, std_pop, mean_unpop, std_unpop, fire_rate, top_items [m, n_top] (item ids; 0 ends a
    list), plus n_synthetic (users per group)."""
    if not isinstance(model, SASRec) or not isinstance(sae, SAE) or not isinstance(dataset, Dataset):
        raise TypeError("probe(model, sae, dataset): expected a SASRec, an SAE and a Dataset")
    if not isinstance(n_top, (int, np.integer)) or n_top < 1:
        raise ValueError(f"n_top must be a positive integer, got {n_top!r}")
    if not isinstance(cap, (int, np.integer)) or cap < 0:
        raise ValueError(f"cap must be a non-negative integer, got {cap!r}")
    m = sae.n_latents
    cols = {c: np.zeros(m, np.float64) for c in LATENT_COLUMNS}
    top = np.zeros((m, n_top), np.int32)
    n_syn = ctypes.c_int64()
    err = _lib.new_err()
    _lib.check(lib.psffi_probe(model._ptr(), sae._ptr(), dataset._ptr(), cap, seed, n_top,
                               *(cols[c].ctypes.data for c in LATENT_COLUMNS), top.ctypes.data, ctypes.byref(n_syn),
                               err), err)
    table = {"latent": np.arange(m, dtype=np.int32), **cols, "top_items": top, "n_synthetic": int(n_syn.value)}
    return table


def _latent_columns(table):
    try:
        cols = [np.ascontiguousarray(table[c], dtype=np.float64) for c in LATENT_COLUMNS]
    except KeyError as e:
        raise ValueError(f"latents table: missing column {e.args[0]!r} (expected {', '.join(LATENT_COLUMNS)})") \
            from None
    m = cols[0].shape
    if len(m) != 1 or m[0] < 1 or any(c.shape != m for c in cols):
        raise ValueError("latents table: every column must be a 1-D array of the same, nonzero length")
    return cols


def save_latents(path, table, dataset=None):
    """Writes a latents table as `popsteer probe` does (the CSV `eval --latents` reads); with
    dataset, its top_items column names the items."""
    cols = _latent_columns(table)
    top, n_top, ds = None, 0, None
    if dataset is not None and "top_items" in table:
        t = np.ascontiguousarray(_int_array(table["top_items"], "top_items"), dtype=np.int32)
        if t.ndim != 2 or t.shape[0] != cols[0].shape[0]:
            raise ValueError(f"top_items: expected shape ({cols[0].shape[0]}, n_top), got {t.shape}")
        if t.size and (t.min() < 0 or t.max() > dataset.n_items):
            raise ValueError(f"top_items: item ids must be in 0..{dataset.n_items}")
        top, n_top, ds = t, t.shape[1], dataset._ptr()
    err = _lib.new_err()
    _lib.check(lib.psffi_latents_write(_path(path, "save_latents"), cols[0].shape[0], *(c.ctypes.data for c in cols),
                                       None if top is None else top.ctypes.data, n_top, ds, err), err)


def load_latents(path, n_latents=None):
    """Reads a latents CSV (popsteer probe's) into the dict of arrays probe() returns (no top_items)."""
    err = _lib.new_err()
    m = ctypes.c_int()
    p = _path(path, "load_latents")
    _lib.check(lib.psffi_latents_read(p, n_latents or 0, ctypes.byref(m), None, err), err)
    cols = {c: np.zeros(m.value, np.float64) for c in LATENT_COLUMNS}
    arr = (ctypes.c_void_p * 6)(*(cols[c].ctypes.data for c in LATENT_COLUMNS))
    _lib.check(lib.psffi_latents_read(p, m.value, ctypes.byref(m), arr, err), err)
    return {"latent": np.arange(m.value, dtype=np.int32), **cols}


class Steerer(_Recommender):
    """The steered recommender (SPEC §5): SASRec's user vector through the SAE with the N latents of
    largest |Cohen's d| shifted by alpha. latents: probe()'s table, load_latents()'s, or a CSV path;
    None gives the SAE-reconstructed model (alpha 0). neurons None steers every latent."""

    def __init__(self, model, sae, latents=None, alpha=0.0, neurons=None):
        if not isinstance(model, SASRec) or not isinstance(sae, SAE):
            raise TypeError("Steerer(model, sae, ...): expected a popsteer.SASRec and a popsteer.SAE")
        alpha = float(alpha)
        if neurons is not None and (not isinstance(neurons, (int, np.integer)) or isinstance(neurons, bool)):
            raise TypeError(f"neurons must be an integer or None, got {neurons!r}")
        mh, sh = model._handle(), sae._handle()
        cols = None
        if latents is not None:
            if isinstance(latents, (str, bytes, os.PathLike)):
                latents = load_latents(latents, sae.n_latents)
            cols = _latent_columns(latents)
            if cols[0].shape[0] != sae.n_latents:
                raise ValueError(f"latents table has {cols[0].shape[0]} latents, the SAE {sae.n_latents}")
        elif alpha != 0.0 or neurons is not None:
            raise ValueError("alpha and neurons need latents (the probe's table)")
        err = _lib.new_err()
        p = lib.psffi_scorer_new(mh.ptr, sh.ptr, *((cols[0].ctypes.data, cols[2].ctypes.data, cols[4].ctypes.data)
                                                   if cols else (None, None, None)),
                                 int(neurons or 0), alpha, 256, err)
        if not p:
            _lib.fail(err)
        self._h = _Handle(p, lib.psffi_scorer_free, (mh, sh))
        self._lock = threading.Lock()
        self.alpha, self.neurons = alpha, neurons
        self.n_items, self.max_len = model.n_items, model.max_len

    def __repr__(self):
        return "<popsteer.Steerer closed>" if self.closed else \
            f"<popsteer.Steerer alpha {self.alpha}, neurons {self.neurons or 'all'}>"

    def _model(self):
        self._ptr()
        return self

    def _scorer(self):
        return self._handle()

    @property
    def plan(self):
        """The steered latents (largest |d| first), their weights and the shifts added to them."""
        n = ctypes.c_int()
        lib.psffi_scorer_plan(self._ptr(), ctypes.byref(n), None, None, None)
        lat, w, s = np.zeros(n.value, np.int32), np.zeros(n.value), np.zeros(n.value)
        lib.psffi_scorer_plan(self._ptr(), ctypes.byref(n), lat.ctypes.data, w.ctypes.data, s.ctypes.data)
        return {"latent": lat, "weight": w, "shift": s}


def evaluate(recommender, dataset, split="test", k=10, mask_seen=False):
    """Full-ranking evaluation (SPEC §6) of a SASRec or a Steerer on a split: the dictionary
    `popsteer eval --json` prints (accuracy, popularity bias, ILAD)."""
    if not isinstance(recommender, (SASRec, Steerer)):
        raise TypeError(f"evaluate: expected a SASRec or a Steerer, got {type(recommender).__name__}")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"evaluate: expected a popsteer.Dataset, got {type(dataset).__name__}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= 100000:
        raise ValueError(f"k must be an integer in 1..100000, got {k!r}")
    sp = _split(split)
    sc = recommender._scorer()
    err = _lib.new_err()
    out = ctypes.c_void_p()
    with recommender._lock:
        _lib.check(lib.psffi_evaluate(sc.ptr, dataset._ptr(), sp, int(k), bool(mask_seen), ctypes.byref(out), err),
                   err)
    return json.loads(_lib.take_string(out))


# ---------------------------------------------------------------------------------------------
# RecBole / PyTorch checkpoints


class _Unresolved:
    """Stands for a pickled object whose class cannot be imported here (RecBole's Config when
    recbole is not installed): keeps its state so that the configuration can still be read."""

    def __init__(self, *args, **kwargs):
        self._state = {}

    def __setstate__(self, state):
        self._state = state

    def __getitem__(self, key):
        st = getattr(self, "_state", None)
        st = st if isinstance(st, dict) else {}
        for d in (st.get("final_config_dict"), st):
            if isinstance(d, dict) and key in d:
                return d[key]
        raise KeyError(key)


class _StubModule(types.ModuleType):
    """A module the checkpoint's pickle names but this interpreter lacks: its classes unpickle
    as _Unresolved."""

    __path__ = []  # a package, so that its submodules can be stubbed too

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (_Unresolved,), {"__module__": self.__name__})
        setattr(self, name, cls)
        return cls


def _torch_load(torch, path):
    """torch.load on the CPU, with modules the pickle needs but cannot import (recbole) stubbed
    for the duration of the call (torch 1.13 ignores a custom pickle_module)."""
    import inspect
    kw = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kw["weights_only"] = False  # RecBole checkpoints hold more than tensors
    added = []
    try:
        for _ in range(64):
            try:
                return torch.load(path, **kw)
            except ModuleNotFoundError as e:
                if not e.name or e.name in sys.modules:
                    raise
                parts = e.name.split(".")
                for i in range(1, len(parts) + 1):
                    n = ".".join(parts[:i])
                    if n not in sys.modules:
                        sys.modules[n] = _StubModule(n)
                        added.append(n)
        raise Error(f"{path}: the checkpoint names too many modules that cannot be imported")
    finally:
        for n in added:
            sys.modules.pop(n, None)


def from_recbole(checkpoint_path, out_path):
    """Converts a RecBole (PyTorch) SASRec checkpoint to this project's safetensors model and
    returns it loaded. Needs torch (not recbole: objects of classes that cannot be imported, such
    as RecBole's Config, are read as plain state). The tensors are checked by the library's loader
    (names, shapes, finite values); n_heads and the other hyperparameters that the shapes do not
    tell come from the checkpoint's config when it has one."""
    try:
        import torch
    except ImportError as e:
        raise ImportError("from_recbole needs PyTorch (Debian: python3-torch)") from e
    ckpt = _torch_load(torch, os.fspath(checkpoint_path))
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{os.fspath(checkpoint_path)}: no state_dict in the checkpoint")
    names, arrays = [], []
    for name, t in state.items():
        if not hasattr(t, "detach"):
            continue
        a = np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy(), dtype=np.float32)
        if a.ndim > 8:
            raise ValueError(f"{name}: {a.ndim} dimensions")
        names.append(name.encode())
        arrays.append(a)
    meta = {}
    cfg = ckpt.get("config") if isinstance(ckpt, dict) else None
    for key in ("n_heads", "layer_norm_eps", "hidden_dropout_prob", "attn_dropout_prob"):
        try:
            v = cfg[key] if cfg is not None else None
        except (KeyError, TypeError, IndexError):
            v = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            meta[key] = repr(float(v)) if isinstance(v, float) else str(v)
    n = len(names)
    shapes = np.zeros((max(n, 1), 8), np.int64)
    for i, a in enumerate(arrays):
        shapes[i, :a.ndim] = a.shape
    err = _lib.new_err()
    out = _path(out_path, "from_recbole")
    keys = list(meta)
    _lib.check(lib.psffi_write_tensors(
        out, n, (ctypes.c_char_p * max(n, 1))(*names), (ctypes.c_int * max(n, 1))(*(a.ndim for a in arrays)),
        shapes.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
        (ctypes.c_void_p * max(n, 1))(*(a.ctypes.data for a in arrays)), len(keys),
        (ctypes.c_char_p * max(len(keys), 1))(*(k.encode() for k in keys)),
        (ctypes.c_char_p * max(len(keys), 1))(*(meta[k].encode() for k in keys)), err), err)
    try:
        model = SASRec.load(out)  # validates names, shapes and values; infers the configuration
        model.save(out)           # rewritten with the full configuration in its metadata
    except Error:
        os.unlink(out)
        raise
    return model
