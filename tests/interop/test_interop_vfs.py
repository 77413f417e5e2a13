"""What an operator's pyobs-gui (a pyobs-core module) needs to open our camera's images on the same machine.

pyobs-gui opens the file of a NewImageEvent with ``await self.vfs.read_fits(event.filename)``, and
pyobs-core's VirtualFileSystem reads the first path component as the name of a VFS root. Our camera
names files by their absolute path, so one root named after the first component of ``image_dir``,
a ``pyobs.vfs.LocalFile`` on that directory, makes every image readable (README: "Images in pyobs-gui").
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness import _clean_env

from pyobs.modules.simulated.camera import SimCamera

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: run by pyobs-core's interpreter: read one file through its VFS, with and without the root
_READ = """
import asyncio, json, sys
from pyobs.vfs import VirtualFileSystem, UnknownRootError
path, roots = sys.argv[1], json.loads(sys.argv[2])
async def main():
    out = {}
    try:
        hdus = await VirtualFileSystem().read_fits(path)
        out["default"] = "read"
    except UnknownRootError as exc:
        out["default"] = f"UnknownRootError: {exc.root}"
    hdus = await VirtualFileSystem(roots=roots).read_fits(path)
    out["shape"] = list(hdus[0].data.shape)
    print(json.dumps(out))
asyncio.run(main())
"""


async def test_pyobs_core_vfs_reads_our_images_with_one_local_root(core_py: Path, tmp_path: Path) -> None:
    camera = SimCamera(image_dir=str(tmp_path / "images"), width=48, height=32, exposure_time=0.01, readout_time=0.0)
    await camera.open()
    try:
        filename = await camera.grab_data()
    finally:
        await camera.close()
    first = Path(filename).parts[1]  # "/tmp/…/camera-….fits" → "tmp"
    roots = {first: {"class": "pyobs.vfs.LocalFile", "root": f"/{first}"}}
    proc = subprocess.run(
        [str(core_py), "-P", "-c", _READ, filename, json.dumps(roots)], capture_output=True, text=True, timeout=120,
        cwd="/", env=_clean_env(),  # pyobs-core's own pyobs, not ours
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # without the root: the error pyobs-gui shows as "the VFS root '<first>' is not configured"
    assert out["default"] == f"UnknownRootError: {first}"
    # with it: the image as written (numpy shape is height x width)
    assert out["shape"] == [32, 48]
