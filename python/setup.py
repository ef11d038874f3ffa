"""Bundles the build's libpopsteer.so.0 into the package (see pyproject.toml for the metadata).

The library is the one in $POPSTEER_LIB, else ../build/libpopsteer.so.0 (what `make build` makes).
Without either, the package is installed alone and looks for the library when imported
($POPSTEER_LIB, or libpopsteer.so.0 on the loader's path)."""

import os
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent


def built_library():
    env = os.environ.get("POPSTEER_LIB")
    if env:
        if not os.path.exists(env):
            raise SystemExit(f"POPSTEER_LIB={env}: no such file")
        return pathlib.Path(env)
    p = HERE.parent / "build" / "libpopsteer.so.0"
    return p if p.exists() else None


class BuildPy(build_py):
    def run(self):
        super().run()
        lib = built_library()
        if lib is None:
            print("popsteer: no libpopsteer.so.0 to bundle (build the project first, or set POPSTEER_LIB); "
                  "the package will look for it when imported")
            return
        dst = pathlib.Path(self.build_lib) / "popsteer" / "libpopsteer.so.0"
        shutil.copyfile(lib.resolve(), dst)
        os.chmod(dst, 0o755)
        print(f"popsteer: bundled {lib.resolve()}")


setup(cmdclass={"build_py": BuildPy})
