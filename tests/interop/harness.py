"""Interop harness: a throw-away prosody, pyobs-core 2.19.1 modules in their own processes (their own
interpreter and venv), and our modules in this process, all on the same server.

pyobs-core's import name is also ``pyobs``: this file never imports it. Its processes are remote
controlled through ``tests/interop/peer/probe.py`` (JSON commands on stdin, ``@@PEER`` JSON lines
on stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from backends.base import eventually

from pyobs.testing.process import start_process

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PREFIX = "@@PEER "
CORE_VERSION = "2.19.1"

#: where pyobs-core's venv may be (the first that exists wins; PYOBS_CORE_PYTHON overrides)
CANDIDATES = [
    REPO / "bench" / ".venvs" / "pyobs-core" / "bin" / "python",
    HERE / ".venv-pyobs-core" / "bin" / "python",
]


def core_python() -> Path | None:
    """pyobs-core's interpreter, if a venv with pyobs-core 2.19.1 exists (never installs anything)."""
    explicit = os.environ.get("PYOBS_CORE_PYTHON")
    for cand in [Path(explicit)] if explicit else CANDIDATES:
        if cand.exists() and _has_core(cand):
            return cand
    return None


def _has_core(python: Path) -> bool:
    code = "import sys\nfrom importlib.metadata import version\nsys.exit(version('pyobs-core') != sys.argv[1])"
    try:
        proc = subprocess.run(
            [str(python), "-P", "-c", code, CORE_VERSION], cwd="/", env=_clean_env(), capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _clean_env(**extra: str) -> dict[str, str]:
    """Environment for pyobs-core's processes: nothing of ours on their path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------- server


class Server:
    """Our throw-away prosody (``python -m pyobs.testing.xmpp_server``) or ejabberd
    (``python -m pyobs.testing.ejabberd_server``) in its own process group."""

    def __init__(self, directory: Path, users: list[str], kind: str = "prosody") -> None:
        self.directory = directory
        self.users = users
        self.kind = kind
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        self.domain = ""
        self.password = ""

    def start(self, timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", f"pyobs.testing.{'ejabberd' if self.kind == 'ejabberd' else 'xmpp'}_server",
               "--dir", str(self.directory), "--users", ",".join(self.users)]  # fmt: skip
        if self.kind == "prosody":
            cmd.append("--allow-plain")  # ejabberd's test config allows PLAIN without TLS anyway
        self.proc = start_process(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        info: dict[str, str] = {}
        lines: list[str] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                key, _, value = line.strip().partition("=")
                info[key] = value
                if key == "dir":
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if "dir" not in info:
            self.stop()
            raise RuntimeError(f"test server did not start within {timeout} s: {''.join(lines)[-2000:]}")
        self.address, self.domain, self.password = info["server"], info["domain"], info["password"]

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def jid(self, name: str) -> str:
        return f"{name}@{self.domain}"

    def our_comm(self, name: str, timeout: float = 10.0) -> Any:
        """An (unopened) XmppComm of ours for account ``name``."""
        from pyobs.comm.xmpp import XmppComm

        return XmppComm(
            jid=self.jid(name),
            password=self.password,
            server=self.address,
            use_tls=False,
            allow_plain=True,
            timeout=timeout,
        )

    def core_comm_config(self, name: str) -> dict[str, Any]:
        """pyobs-core's ``comm:`` config for account ``name`` (plaintext, their default)."""
        return {
            "class": "pyobs.comm.xmpp.XmppComm",
            "jid": f"{self.jid(name)}/pyobs",
            "password": self.password,
            "server": self.address,
            "use_tls": False,
        }

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # the launcher stops its server itself
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---------------------------------------------------------------------------------------------- peers


class PeerError(AssertionError):
    pass


class CorePeer:
    """One pyobs-core module in its own process, started by pyobs-core's own CLI with its interpreter."""

    def __init__(self, python: Path, name: str, config: dict[str, Any], workdir: Path) -> None:
        self.python = python
        self.name = name
        self.config = config
        self.workdir = workdir
        self.records: list[dict[str, Any]] = []
        self.log: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- process

    def start(self) -> CorePeer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(self.config))
        cmd = [str(self.python), "-P", "-m", "pyobs.cli.pyobs", "--iers-offline", "--log-level", "info", str(path)]
        self.proc = start_process(
            cmd,
            cwd=self.workdir,
            env=_clean_env(PYTHONPATH=str(HERE), PYTHONUNBUFFERED="1"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, name=f"peer-{self.name}", daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                try:
                    record = json.loads(line[len(PREFIX) :])
                except ValueError:
                    continue
                with self._lock:
                    self.records.append(record)
            else:
                with self._lock:
                    self.log.append(line.rstrip("\n"))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        with self._lock:
            return "\n".join(self.log[-n:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (pyobs-core's CLI then closes its module and logs out cleanly), SIGKILL if it hangs."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    # -- observations

    def find(self, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self.records)
        return [r for r in records if all(r.get(k) == v for k, v in match.items())]

    async def wait_record(
        self, what: str, timeout: float = 20.0, predicate: Callable[[dict[str, Any]], bool] | None = None, **match: Any
    ) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            if not self.running:
                raise PeerError(
                    f"pyobs-core module {self.name} exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}"
                )
            for r in self.find(**match):
                if predicate is None or predicate(r):
                    return r
            return None

        try:
            return await eventually(look, timeout, f"{self.name}: {what}")  # type: ignore[no-any-return]
        except AssertionError as exc:
            if isinstance(exc, PeerError):
                raise
            raise AssertionError(f"{exc}\n--- last log lines of {self.name}:\n{self.log_tail()}") from None

    async def wait_log(self, text: str, timeout: float = 20.0) -> str:
        """Wait for a log line of the process containing ``text``."""

        def look() -> str | None:
            with self._lock:
                for line in self.log:
                    if text in line:
                        return line
            if not self.running:
                raise PeerError(f"pyobs-core module {self.name} exited:\n{self.log_tail()}")
            return None

        return await eventually(look, timeout, f"{self.name} to log {text!r}")  # type: ignore[no-any-return]

    async def wait_started(self, timeout: float = 90.0) -> None:
        """pyobs-core's CLI logs this once the module is open and READY (any module class)."""
        await self.wait_log("Started successfully", timeout)

    # -- commands

    async def request(self, cmd: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Send a command; return the reply record ({"ok": …, "result"|"error": …, "elapsed": …})."""
        ident = next(self._ids)
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": ident, "cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        return await self.wait_record(f"reply to {cmd} {args}", timeout, kind="reply", id=ident)

    async def result(self, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
        """Like :meth:`request`, but the (tagged) result; AssertionError if the command failed."""
        reply = await self.request(cmd, timeout, **args)
        if not reply["ok"]:
            raise AssertionError(f"{self.name}: {cmd} {args} failed: {reply['error']}")
        return reply["result"]

    async def call(self, module: str, interface: str, method: str, *args: Any, timeout: float = 30.0) -> Any:
        return await self.result(
            "call", timeout, module=module, interface=interface, method=method, args=[tag(a) for a in args]
        )

    async def call_fails(self, module: str, interface: str, method: str, *args: Any, timeout: float = 30.0) -> Any:
        """Call that must fail; returns the error record (type, message, original_type, mro) and elapsed."""
        reply = await self.request(
            "call", timeout, module=module, interface=interface, method=method, args=[tag(a) for a in args]
        )
        assert not reply["ok"], f"{module}.{method}{args} succeeded: {reply['result']!r}"
        return {**reply["error"], "elapsed": reply["elapsed"]}


def tag(value: Any) -> Any:
    """Our Python value -> the tagged JSON the probe decodes into pyobs-core-side values."""
    import dataclasses
    import enum

    if value is None or (isinstance(value, (bool, int, float)) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "value": value.value}
    if isinstance(value, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "dataclass": type(value).__name__,
            "fields": {f.name: tag(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, tuple):
        return {"tuple": [tag(v) for v in value]}
    if isinstance(value, list):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): tag(v) for k, v in value.items()}}
    raise TypeError(f"cannot tag {value!r}")


# ---------------------------------------------------------------------------------------------- fixtures


class CorePeers:
    """The pyobs-core modules every test can use (started once per session)."""

    def __init__(self, core_py: Path, server: Server, workdir: Path, sky_image: Path) -> None:
        self.core_py, self.server, self.workdir, self.sky_image = core_py, server, workdir, sky_image
        self.all: list[CorePeer] = []

    def make(self, name: str, cls: str, **options: Any) -> CorePeer:
        config = {"class": cls, **options, "comm": self.server.core_comm_config(name)}
        peer = CorePeer(self.core_py, name, config, self.workdir / name)
        self.all.append(peer)
        return peer

    def camera(self, name: str = "corecam") -> CorePeer:
        cache = self.workdir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        return self.make(
            name,
            "pyobs.modules.camera.DummyCamera",
            readout_time=0.2,
            images=str(self.sky_image),
            vfs={
                "class": "pyobs.vfs.VirtualFileSystem",
                "roots": {"cache": {"class": "pyobs.vfs.LocalFile", "root": str(cache)}},
            },
        )

    def stop_all(self) -> None:
        for peer in self.all:
            peer.stop()


@dataclass
class Core:
    sink: CorePeer  # peer.probe.CoreSink: IKitchenSink + remote control
    scope: CorePeer  # peer.probe.CoreTelescope: ITelescope, IPointingRaDec, IFocuser
    cam: CorePeer  # pyobs-core's own DummyCamera
    peers: CorePeers


@dataclass
class Ours:
    sink: Any  # ours.OurSink (support.KitchenSink)
    scope: Any  # ours.OurTelescope
    focus: Any  # pyobs.modules.simulated.focuser.SimFocuser
    cam: Any  # pyobs.modules.simulated.camera.SimCamera
    probe: Any  # ours.OurProbe (comm timeout 3 s)
    sim: Any  # pyobs.modules.simulated.telescope.SimTelescope
    server: Server


# ---------------------------------------------------------------------------------------------- raw


class RawClient:
    """A bare slixmpp session (no pyobs at all) that sends hand-written stanzas to both sides, so
    their answers can be compared byte for byte. It never sends presence: nobody discovers it."""

    def __init__(self, server: Server, user: str) -> None:
        import slixmpp
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.server = server
        self.client = slixmpp.ClientXMPP(f"{server.jid(user)}/raw", server.password)
        self.client.enable_plaintext = True
        self.client.enable_starttls = False
        self.client.register_plugin("xep_0030")
        self.client.plugin["feature_mechanisms"].unencrypted_plain = True
        self.replies: dict[str, list[Any]] = {}
        self._started = asyncio.Event()
        self.client.add_event_handler("session_start", lambda _: self._started.set())
        self.client.register_handler(Callback("raw replies", MatchXPath("{jabber:client}iq"), self._on_reply))
        self.messages: list[Any] = []
        self.client.register_handler(
            Callback("raw messages", MatchXPath("{jabber:client}message"), lambda m: self.messages.append(m.xml))
        )

    def _on_reply(self, iq: Any) -> None:
        if iq["type"] in ("result", "error"):
            self.replies.setdefault(iq["id"], []).append(iq.xml)

    async def connect(self, timeout: float = 20.0) -> None:
        self.client.connect(host=self.server.host, port=self.server.port)
        await asyncio.wait_for(self._started.wait(), timeout)

    def disconnect(self) -> None:
        self.client.disconnect()

    async def send(
        self, to: str, payload: str, iq_type: str = "set", count: int = 1, timeout: float = 20.0, bare: bool = False
    ) -> list[Any]:
        """Send ``<iq type=… to=<to>/pyobs>payload</iq>``; wait for ``count`` replies with its id."""
        from xml.etree import ElementTree

        iq = self.client.make_iq(ito=to if bare else f"{self.server.jid(to)}/pyobs", itype=iq_type)
        iq.append(ElementTree.fromstring(payload))
        ident = iq["id"]
        iq.send()
        await eventually(lambda: len(self.replies.get(ident, [])) >= count, timeout, f"{count} replies from {to}")
        return self.replies[ident]

    async def rpc(self, to: str, method: str, params: list[str], count: int = 1, timeout: float = 20.0) -> list[Any]:
        """A jabber:iq:rpc methodCall with the given vocabulary elements (written with xmlns="") as params."""
        body = "".join(f'<param><value><value xmlns="urn:pyobs:rpc:1">{p}</value></value></param>' for p in params)
        payload = (
            f'<query xmlns="jabber:iq:rpc"><methodCall><methodName>{method}</methodName>'
            f"<params>{body}</params></methodCall></query>"
        )
        return await self.send(to, payload, count=count, timeout=timeout)

    @property
    def full_jid(self) -> str:
        return str(self.client.boundjid.full)

    async def subscribe(self, node: str) -> None:
        """Subscribe this session's full JID to a pubsub node (no presence needed for delivery)."""
        await self.send(
            f"pubsub.{self.server.domain}",
            '<pubsub xmlns="http://jabber.org/protocol/pubsub">'
            f'<subscribe node="{node}" jid="{self.full_jid}"/></pubsub>',
            bare=True,
        )

    def notifications(self, node: str) -> list[Any]:
        """Payloads of the items of pubsub notifications received for ``node``."""
        out = []
        for message in self.messages:
            for items in message.iter("{http://jabber.org/protocol/pubsub#event}items"):
                if items.get("node") == node:
                    out.extend(item[0] for item in items if len(item))
        return out

    async def disco(self, to: str) -> Any:
        (reply,) = await self.send(to, '<query xmlns="http://jabber.org/protocol/disco#info"/>', iq_type="get")
        return reply


def canonical(element: Any) -> str:
    """An element's payload in a canonical text form: without the iq's id/from/to, namespaces
    spelled out, children in document order, whitespace-only text dropped."""

    def walk(e: Any, depth: int) -> list[str]:
        attrs = " ".join(f"{k}={v!r}" for k, v in sorted(e.attrib.items()) if k not in ("id", "from", "to"))
        text = (e.text or "").strip()
        line = "  " * depth + e.tag + (f" [{attrs}]" if attrs else "") + (f" {text!r}" if text else "")
        return [line] + [x for c in e for x in walk(c, depth + 1)]

    return "\n".join(walk(element, 0))
