"""Shared fixtures: a tiny stack built from data the project generates itself (a generated log, a
SASRec trained for 2 epochs, an SAE of 256 latents, the probe), the CLI to compare against, and
../shared when it is there."""

import json
import os
import pathlib
import subprocess

import pytest

import popsteer as ps

REPO = pathlib.Path(__file__).resolve().parents[2]


def _cli():
    p = os.environ.get("POPSTEER_CLI") or str(REPO / "build" / "popsteer")
    return p if os.path.exists(p) else None


@pytest.fixture(scope="session")
def cli():
    """run(args...) -> stdout of the popsteer binary (the build's, or $POPSTEER_CLI)."""
    exe = _cli()
    if exe is None:
        pytest.skip("the popsteer binary is not built (set POPSTEER_CLI or build into build/)")

    def run(*args, json_out=True):
        r = subprocess.run([exe, *map(str, args), "--quiet", "--threads", "2"] + (["--json"] if json_out else []),
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, f"popsteer {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}"
        return json.loads(r.stdout) if json_out else r.stdout
    return run


class Stack:
    pass


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("stack")
    s = Stack()
    s.dir = d
    s.data = ps.synth(d / "synth.inter", users=300, items=150, interactions=9000, seed=42)
    s.ds = ps.Dataset.load(s.data)
    s.progress = []
    s.model = ps.SASRec.train(s.ds, epochs=2, threads=2, progress=s.progress.append)
    s.sae = ps.SAE.train(s.model, s.ds, k=8, scale=4, k_aux=16, epochs=2, threads=2)
    s.latents = ps.probe(s.model, s.sae, s.ds)
    s.model_path, s.sae_path, s.latents_path = d / "model.safetensors", d / "sae.safetensors", d / "latents.csv"
    s.model.save(s.model_path)
    s.sae.save(s.sae_path)
    ps.save_latents(s.latents_path, s.latents, s.ds)
    return s


def shared(rel):
    p = REPO.parent / "shared" / rel
    return p if p.exists() else None
