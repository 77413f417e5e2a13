"""Fixtures of the interop tests: one prosody, pyobs-core modules in their own processes, ours in this one.

Skipped (cleanly, at collection) when pyobs-core's venv does not exist, so the main suite never needs
PyPI; ``tests/interop/run.sh`` creates the venv and sets ``PYOBS_INTEROP=1``, which turns a missing
venv, prosody or XMPP transport into an error instead. ``PYOBS_INTEROP=0`` skips them always.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "behaviour"))  # support.py: IKitchenSink and friends

from harness import Core, CorePeer, CorePeers, Ours, Server, core_python  # noqa: E402

#: every account on the server; pyobs-core's modules are "core*", ours "our*"
CORE_NAMES = ["coresink", "corescope", "corecam", "corelate", "coreflap", "corerestart", "coreacl", "coreobserver"]
OUR_NAMES = ["oursink", "ourscope", "ourfocus", "ourcam", "ourprobe", "ourlate", "ourslow", "ourrestart", "oursim"]
OUR_NAMES += ["ouracl", "ourforger"]
OUR_NAMES += ["ourweather", "oursimcam", "oursimscope"]
OUR_NAMES += ["ourcompat"]  # test_compat_behaviour: a module started with `pyobs`
OUR_NAMES += ["ourtool", "ourtool2"]  # test_interop_cli: pyobs-comm (one session per account)

_PYTHON = None if os.environ.get("PYOBS_INTEROP") == "0" else core_python()


def _why_not() -> str | None:
    if os.environ.get("PYOBS_INTEROP") == "0":
        return "PYOBS_INTEROP=0"
    if _PYTHON is None:
        return "no pyobs-core 2.19.1 venv (run tests/interop/run.sh)"
    if "prosody" in _server_kinds() and shutil.which(os.environ.get("PYOBS_PROSODY", "prosody")) is None:
        return "prosody is not installed"
    if "ejabberd" in _server_kinds():
        from pyobs.testing.ejabberd_server import available

        why = available()
        if why is not None:
            return why
    try:
        import pyobs.comm.xmpp  # noqa: F401
        from pyobs.comm.xmpp import XmppComm  # noqa: F401
    except ImportError as exc:
        return f"our XMPP transport is not importable: {exc}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _why_not()
    if reason is None:
        return
    if os.environ.get("PYOBS_INTEROP") == "1":
        raise pytest.UsageError(f"interop tests requested (PYOBS_INTEROP=1) but cannot run: {reason}")
    skip = pytest.mark.skip(reason=f"interop with pyobs-core: {reason}")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def core_py() -> Path:
    assert _PYTHON is not None
    return _PYTHON


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # the whole interop suite runs once per XMPP server kind (PYOBS_XMPP_SERVERS, default both)
    if "server" in metafunc.fixturenames and HERE in Path(str(metafunc.definition.path)).resolve().parents:
        metafunc.parametrize("server", _server_kinds(), indirect=True, scope="session")


def _server_kinds() -> list[str]:
    from backends.xmpp import server_kinds

    return server_kinds()


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind = getattr(request, "param", "prosody")
    srv = Server(tmp_path_factory.mktemp(kind), CORE_NAMES + OUR_NAMES, kind)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def sky_image(core_py: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small FITS file for pyobs-core's DummyCamera (written by their astropy, no network)."""
    import subprocess

    path = tmp_path_factory.mktemp("images") / "sky.fits"
    code = (
        "import sys, numpy as np\nfrom astropy.io import fits\n"
        "fits.PrimaryHDU(np.full((64, 64), 1000, dtype=np.uint16)).writeto(sys.argv[1])"
    )
    subprocess.run([str(core_py), "-P", "-c", code, str(path)], check=True, cwd="/", timeout=120)
    return path


@pytest.fixture(scope="session")
def core(core_py: Path, server: Server, tmp_path_factory: pytest.TempPathFactory, sky_image: Path) -> Iterator[Core]:
    peers = CorePeers(core_py, server, tmp_path_factory.mktemp("core"), sky_image)
    try:
        sink = peers.make("coresink", "peer.probe.CoreSink").start()
        scope = peers.make("corescope", "peer.probe.CoreTelescope").start()
        cam = peers.camera().start()
        yield Core(sink, scope, cam, peers)
    finally:
        peers.stop_all()


@pytest.fixture(scope="session")
def core_twin(core: Core) -> Iterator[CorePeer]:
    """A second pyobs-core IKitchenSink ("coreflap"): what pyobs-core does with its own kind, to compare."""
    twin = core.peers.make("coreflap", "peer.probe.CoreSink").start()
    try:
        yield twin
    finally:
        twin.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ours(server: Server, core: Core, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ours]:
    from ours import OurProbe, OurSink, OurTelescope

    from pyobs.modules.simulated.camera import SimCamera
    from pyobs.modules.simulated.focuser import SimFocuser
    from pyobs.modules.simulated.telescope import SimTelescope

    modules: list[Any] = []
    try:
        sink = OurSink(comm=server.our_comm("oursink"))
        scope = OurTelescope(comm=server.our_comm("ourscope"))
        focus = SimFocuser(focus=10.0, speed=50.0, comm=server.our_comm("ourfocus"))
        cam = SimCamera(
            image_dir=str(tmp_path_factory.mktemp("ourimages")),
            focuser=None,
            telescope=None,
            width=64,
            height=64,
            exposure_time=0.2,
            readout_time=0.1,
            comm=server.our_comm("ourcam"),
        )
        probe = OurProbe(comm=server.our_comm("ourprobe", timeout=3.0))
        sim = SimTelescope(slew_speed=90.0, settle_time=0.0, init_time=0.1, state_interval=0.2,
                           comm=server.our_comm("oursim"))  # fmt: skip
        for m in (sink, scope, focus, cam, probe, sim):
            await m.open()
            modules.append(m)
        # both directions of discovery must be complete before any test starts
        for peer in (core.sink, core.scope, core.cam):
            await peer.wait_started(90.0)
        from harness import eventually

        for m in modules:
            for name in ("coresink", "corescope", "corecam"):
                await eventually(lambda m=m, name=name: m.comm.is_online(name), 60.0, f"{m.comm.name} sees {name}")
        for name in ("oursink", "ourscope", "ourfocus", "ourcam", "ourprobe", "oursim"):
            for peer in (core.sink,):
                await peer.wait_record(f"sees {name}", 60.0, kind="event", type="ModuleOpenedEvent", sender=name)
        yield Ours(sink, scope, focus, cam, probe, sim, server)
    finally:
        for m in reversed(modules):
            try:
                await m.close()
            except Exception as exc:  # closing must not hide the test's own failure
                print(f"closing {m!r} failed: {exc!r}", file=sys.stderr)
