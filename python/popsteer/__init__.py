"""popsteer: PopSteer (SASRec + TopK sparse autoencoder + steering of popularity-biased latents)
over the C library libpopsteer, with numpy arrays in and out. See docs/python.md."""

from ._core import (SAE, ClosedError, Dataset, Error, Progress, SASRec, Steerer, evaluate, from_recbole,
                    load_latents, probe, save_latents, set_threads, synth)
from ._lib import lib as _clib

__version__ = "0.1.0"
__all__ = ["Error", "ClosedError", "Progress", "Dataset", "SASRec", "SAE", "Steerer", "probe", "evaluate",
           "save_latents", "load_latents", "synth", "set_threads", "from_recbole", "library_path"]


def library_path():
    """The libpopsteer shared object this package uses."""
    return _clib._name
