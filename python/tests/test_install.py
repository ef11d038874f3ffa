"""`pip install ./python` in a fresh virtual environment, offline (docs/python.md, Install)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import popsteer as ps

PKG = pathlib.Path(__file__).resolve().parents[1]


def test_pip_install_offline(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not installed for this interpreter (python3-pip)")
    src = tmp_path / "src"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"no venv module (python3-venv): {r.stderr.strip()[-200:]}")
    env = dict(os.environ, POPSTEER_LIB=os.path.abspath(ps.library_path()), PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-build-isolation", str(src)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env.pop("POPSTEER_LIB")  # the installed package must find its own copy of the library
    code = ("import popsteer as ps, sys; p = ps.library_path(); assert p.startswith(sys.prefix), p; "
            "ds = ps.Dataset.load(ps.synth(sys.argv[1], users=50, items=40, interactions=800)); "
            "print(ds.stats()['users'])")
    r = subprocess.run([py, "-c", code, str(tmp_path / "d.inter")], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) == ps.Dataset.load(tmp_path / "d.inter").n_users
