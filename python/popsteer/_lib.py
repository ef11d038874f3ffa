"""Loading libpopsteer.so and declaring the flat C entry points of include/popsteer/ffi.h.

ctypes releases the GIL around every call into the library (it is a CDLL), so long calls
(training, evaluation) let other Python threads run; callbacks take it back while they run.
"""

import ctypes
import os
import pathlib

ABI_VERSION = 1  # PSFFI_ABI_VERSION in include/popsteer/ffi.h

_SONAME = "libpopsteer.so.0"


class Error(RuntimeError):
    """A failure reported by the C library; the message is the library's own."""


class _ErrBuf(ctypes.Structure):  # ps_error
    _fields_ = [("msg", ctypes.c_char * 1024)]


def _candidates():
    env = os.environ.get("POPSTEER_LIB")
    if env:
        return [pathlib.Path(env)], True
    here = pathlib.Path(__file__).resolve().parent
    paths = [here / _SONAME]  # bundled by `pip install ./python` when the build was there
    # importing from a source checkout: python/popsteer -> <repo>/build
    paths.append(here.parent.parent / "build" / _SONAME)
    return paths, False


def _load():
    paths, explicit = _candidates()
    for p in paths:
        if p.exists():
            return ctypes.CDLL(str(p))
    if explicit:
        raise ImportError(f"POPSTEER_LIB={paths[0]}: no such file")
    try:
        return ctypes.CDLL(_SONAME)  # installed system-wide (ldconfig, LD_LIBRARY_PATH)
    except OSError as e:
        raise ImportError(
            "popsteer: cannot find libpopsteer.so.0; build it (make build) and set POPSTEER_LIB to "
            "its path, or reinstall the package after building (see docs/python.md)") from e


lib = _load()

c_int, c_int32, c_int64, c_uint64, c_double, c_char_p, c_void_p = (
    ctypes.c_int, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_double, ctypes.c_char_p,
    ctypes.c_void_p)
P = ctypes.POINTER
err_p = P(_ErrBuf)

PROGRESS = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, c_int, c_int64, c_int64, c_double)


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_sig("psffi_abi_version", c_int)
_sig("psffi_free", None, c_void_p)
_sig("psffi_threads", c_int, c_int)
_sig("psffi_gemm_rows_exact", c_int)
_sig("psffi_synth", c_int, c_char_p, c_int32, c_int32, c_int64, c_uint64, err_p)
_sig("psffi_dataset_load", c_void_p, c_char_p, c_char_p, c_int, c_int, c_double, c_int, c_double, c_double,
     c_char_p, c_char_p, c_char_p, c_char_p, err_p)
_sig("psffi_dataset_free", None, c_void_p)
_sig("psffi_dataset_sizes", None, c_void_p, P(c_int64))
_sig("psffi_dataset_array", c_void_p, c_void_p, c_int)
_sig("psffi_dataset_user_token", c_char_p, c_void_p, c_int64)
_sig("psffi_dataset_item_token", c_char_p, c_void_p, c_int64)
_sig("psffi_dataset_prefixes", c_int, c_void_p, c_void_p, c_int64, c_int, c_void_p, c_void_p, err_p)
_sig("psffi_dataset_stats_json", c_int, c_void_p, P(c_void_p), err_p)
_sig("psffi_sasrec_load", c_void_p, c_char_p, err_p)
_sig("psffi_sasrec_save", c_int, c_void_p, c_char_p, err_p)
_sig("psffi_sasrec_new", c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_double, c_double, c_uint64, err_p)
_sig("ps_sasrec_free", None, c_void_p)
_sig("psffi_sasrec_config", None, c_void_p, P(c_int64), P(c_double))
_sig("psffi_sasrec_item_embedding", c_void_p, c_void_p)
_sig("psffi_sasrec_check_dataset", c_int, c_void_p, c_void_p, err_p)
_sig("psffi_sasrec_train", c_int, c_void_p, c_void_p, c_int, c_int, c_int, c_double, c_int, c_int, c_int, c_uint64,
     c_int, PROGRESS, c_void_p, P(c_double), err_p)
_sig("psffi_sasrec_user_vectors", c_int, c_void_p, c_void_p, c_void_p, c_int64, c_void_p, err_p)
_sig("psffi_sae_load", c_void_p, c_char_p, err_p)
_sig("psffi_sae_save", c_int, c_void_p, c_char_p, err_p)
_sig("psffi_sae_free", None, c_void_p)
_sig("psffi_sae_train", c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_double, c_int, c_uint64,
     PROGRESS, c_void_p, P(c_double), err_p)
_sig("psffi_sae_config", None, c_void_p, P(c_int64))
_sig("psffi_sae_tensor", c_void_p, c_void_p, c_int)
_sig("psffi_sae_encode", c_int, c_void_p, c_void_p, c_int64, c_void_p, err_p)
_sig("psffi_sae_decode", c_int, c_void_p, c_void_p, c_int64, c_void_p, err_p)
_sig("psffi_probe", c_int, c_void_p, c_void_p, c_void_p, c_int64, c_uint64, c_int, c_void_p, c_void_p, c_void_p,
     c_void_p, c_void_p, c_void_p, c_void_p, P(c_int64), err_p)
_sig("psffi_latents_write", c_int, c_char_p, c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p,
     c_void_p, c_int, c_void_p, err_p)
_sig("psffi_latents_read", c_int, c_char_p, c_int, P(c_int), c_void_p, err_p)
_sig("psffi_scorer_new", c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_double, c_int, err_p)
_sig("psffi_scorer_free", None, c_void_p)
_sig("psffi_scorer_plan", c_int, c_void_p, P(c_int), c_void_p, c_void_p, c_void_p)
_sig("psffi_scorer_scores", c_int, c_void_p, c_void_p, c_void_p, c_int64, c_void_p, err_p)
_sig("psffi_evaluate", c_int, c_void_p, c_void_p, c_int, c_int, c_int, P(c_void_p), err_p)
_sig("psffi_topk", None, c_void_p, c_int64, c_int32, c_int, c_void_p, c_void_p)
_sig("psffi_write_tensors", c_int, c_char_p, c_int, P(c_char_p), P(c_int), P(c_int64), P(c_void_p), c_int,
     P(c_char_p), P(c_char_p), err_p)

if lib.psffi_abi_version() != ABI_VERSION:
    raise ImportError(f"popsteer: libpopsteer's FFI version is {lib.psffi_abi_version()}, this package "
                      f"expects {ABI_VERSION}: rebuild the library and the package from the same checkout")


def new_err():
    return _ErrBuf()


def fail(err):
    """Raises Error with the library's message."""
    raise Error(err.msg.decode("utf-8", "replace") or "popsteer: unknown error")


def check(rc, err):
    if rc != 0:
        fail(err)


def take_string(ptr):
    """Copies a malloc'ed C string into Python and frees it."""
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.psffi_free(ptr)
