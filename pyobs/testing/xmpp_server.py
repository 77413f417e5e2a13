"""A throw-away prosody for tests, benchmarks and examples.

Starts ``prosody`` in the foreground on a free 127.0.0.1 port with a config, data, pid and log in a
(temporary) directory: one virtual host, c2s only (no s2s, no HTTP), a pubsub component
``pubsub.<domain>`` on which every account is admin (see the wire spec §2.3), that auto-creates
nodes on publish and names each item's publisher, a mod_groups shared roster listing every account
(the fleet), raised rate limits, and optionally a self-signed certificate for STARTTLS. Accounts
outside the fleet (``outsiders``: not in the shared roster, no pubsub admins; ``name@other.domain``
for another virtual host) are there to attack it in tests.

Python::

    async with TestServer(users=["camera", "telescope"]) as server:
        comm = XmppComm(jid=server.jid("camera"), password=server.password, server=server.address)

Command line (prints the address and domain, runs until SIGTERM/SIGINT)::

    python -m pyobs.testing.xmpp_server --dir /tmp/xmpp --users camera,telescope
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from .process import ServerBase, TestServerError, free_port, server_parser, start_process, stop_process, wait_for_port

__all__ = ["PROSODY", "PROSODYCTL", "SERVER_PLUGINS", "TestServer", "TestServerError", "free_port", "main"]

PROSODY = os.environ.get("PYOBS_PROSODY", "prosody")
#: prosody's mod_pyobs_nodes and ejabberd's node_pyobs (docs/xmpp.md, "Node ownership")
SERVER_PLUGINS = Path(__file__).resolve().parent.parent / "comm" / "xmpp" / "server_plugins"
PROSODYCTL = os.environ.get("PYOBS_PROSODYCTL", "prosodyctl")


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class TestServer(ServerBase):
    """A prosody process with a throw-away configuration.

    Args:
        users: account names (local parts) to register; more can be added with :meth:`add_users`.
        outsiders: accounts that are not in the fleet: ``name`` (in ``domain``) or ``name@host``
            (another virtual host, created for it); same password.
        domain: the virtual host.
        password: the password of every account.
        directory: where config, data, pid and log go (a new temporary directory if None; a given
            directory is kept, a temporary one removed by :meth:`cleanup`).
        port: the c2s port (a free one if None).
        tls: create a self-signed certificate and offer STARTTLS (then encryption is required).
        allow_plain: let clients authenticate with PLAIN over an unencrypted connection.
        disable_mechanisms: SASL mechanisms the server does not offer (e.g. SCRAM-SHA-1, to test PLAIN).
        tuned_gc: pace prosody's garbage collector as Lua does by default (what docs/xmpp.md recommends
            for production); False keeps prosody's own memory-saving pacing, which costs about twice
            the CPU per stanza (the benchmark can compare both).
        restrict_nodes: load mod_pyobs_nodes on the pubsub component (docs/xmpp.md): only a
            module's own account may create or change its pyobs nodes.
        startup_timeout: how long :meth:`start` waits for the port to accept connections.
    """

    kind = "prosody"
    config_name = "prosody.cfg.lua"
    log_name = "prosody.log"

    def __init__(
        self,
        users: Iterable[str] = (),
        *,
        outsiders: Iterable[str] = (),
        domain: str = "pyobs.test",
        password: str = "pyobs",
        directory: str | os.PathLike[str] | None = None,
        port: int | None = None,
        tls: bool = False,
        allow_plain: bool = False,
        disable_mechanisms: Iterable[str] = ("DIGEST-MD5",),
        tuned_gc: bool = True,
        restrict_nodes: bool = True,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(users, outsiders, domain, password, directory)
        self.port = port or free_port(self.host)
        #: with ``tls``: a second c2s port speaking TLS from the first byte (XEP-0368)
        self.direct_tls_port = free_port(self.host) if tls else None
        self.tls = tls
        self.allow_plain = allow_plain
        self.disable_mechanisms = list(disable_mechanisms)
        self.tuned_gc = tuned_gc
        self.restrict_nodes = restrict_nodes
        self.startup_timeout = startup_timeout

    # ------------------------------------------------------------------ addresses

    @property
    def direct_tls_address(self) -> str:
        """``host:port`` of the direct-TLS port (only with ``tls=True``)."""
        if self.direct_tls_port is None:
            raise ValueError("the test server was started without tls=True")
        return f"{self.host}:{self.direct_tls_port}"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate (to pass as ``ca_file``); only with ``tls=True``."""
        return self.directory / "certs" / f"{self.domain}.crt"

    # ------------------------------------------------------------------ setup

    def _write_config(self) -> None:
        d = self.directory
        (d / "data").mkdir(parents=True, exist_ok=True)
        admins = "; ".join(_lua(self.jid(u)) for u in self.users)
        ssl = ""
        if self.tls:
            ssl = (
                f"ssl = {{ key = {_lua(str(d / 'certs' / (self.domain + '.key')))}; "
                f"certificate = {_lua(str(self.ca_file))}; }}\n"
            )
        tls_module = '"tls"; ' if self.tls else ""
        other_hosts = "".join(
            f"VirtualHost {_lua(h)}\n{ssl}" for h in sorted({h for _, h in self.outsiders if h != self.domain})
        )
        mechanisms = "; ".join(_lua(m) for m in self.disable_mechanisms)
        # Lua's own collector pacing instead of prosody's memory-saving default (threshold 105,
        # speed 500), which spends about half of prosody's CPU per stanza on collection (docs/xmpp.md)
        gc = 'gc = { mode = "incremental"; threshold = 200; speed = 100 }' if self.tuned_gc else ""
        plugin_paths = f"plugin_paths = {{ {_lua(str(SERVER_PLUGINS))} }}" if self.restrict_nodes else ""
        pubsub_modules = '    modules_enabled = { "pyobs_nodes" }' if self.restrict_nodes else ""
        config = f"""-- generated by pyobs.testing.xmpp_server; throw-away
run_as_root = true
{plugin_paths}
pidfile = {_lua(str(d / "prosody.pid"))}
data_path = {_lua(str(d / "data"))}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {_lua(str(self.log_file))} }} }}
interfaces = {{ {_lua(self.host)} }}
c2s_ports = {{ {self.port} }}
c2s_interfaces = {{ {_lua(self.host)} }}
s2s_ports = {{ }}
c2s_direct_tls_ports = {{ {self.direct_tls_port or ""} }}
modules_enabled = {{ "roster"; "saslauth"; {tls_module}"disco"; "ping"; "groups"; "limits"; "posix" }}
modules_disabled = {{ "s2s"; "offline"; "admin_socket"{"" if self.tls else '; "tls"'} }}
certificates = {_lua(str(d / "certs"))}
authentication = "internal_hashed"
storage = "internal"
groups_file = {_lua(str(d / "groups.txt"))}
limits = {{ c2s = {{ rate = "100mb/s"; burst = "10s" }} }}
-- low latency: no Nagle delay
network_settings = {{ nagle = false }}
{gc}
c2s_stanza_size_limit = 10*1024*1024
c2s_require_encryption = {"true" if self.tls else "false"}
allow_unencrypted_plain_auth = {"true" if self.allow_plain else "false"}
disable_sasl_mechanisms = {{ {mechanisms} }}
{ssl}
VirtualHost {_lua(self.domain)}
{ssl}{other_hosts}
Component {_lua(self.pubsub)} "pubsub"
    autocreate_on_publish = true
    expose_publisher = true
    pubsub_max_items = 256
    admins = {{ {admins} }}
{pubsub_modules}
"""
        self.config_file.write_text(config)
        groups = "[pyobs]\n" + "".join(self.jid(u) + "\n" for u in self.users)
        (d / "groups.txt").write_text(groups)

    def _make_cert(self) -> None:
        certs = self.directory / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        key = certs / f"{self.domain}.key"
        if key.exists() and self.ca_file.exists():
            return
        cmd = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(self.ca_file),
            "-subj", f"/CN={self.domain}",
            "-addext", f"subjectAltName=DNS:{self.domain},IP:{self.host}",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ]  # fmt: skip
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        except FileNotFoundError:
            raise TestServerError("openssl is needed to create a test certificate") from None
        except subprocess.CalledProcessError as exc:
            raise TestServerError(f"openssl failed: {exc.stderr.decode(errors='replace')}") from None

    def _register(self, accounts: list[tuple[str, str]]) -> None:
        """Register (name, host) accounts with ``prosodyctl --config`` (a few at a time, each bounded)."""
        todo = list(accounts)
        running: list[tuple[str, subprocess.Popen[bytes]]] = []
        limit = max(2, os.cpu_count() or 2)
        while todo or running:
            while todo and len(running) < limit:
                name, host = todo.pop(0)
                user = f"{name}@{host}"
                cmd = [PROSODYCTL, "--config", str(self.config_file), "register", name, host, self.password]
                running.append((user, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
            user, proc = running.pop(0)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise TestServerError(f"prosodyctl register {user} timed out") from None
            if proc.returncode != 0:
                text = out.decode(errors="replace").strip()
                raise TestServerError(f"prosodyctl register {user} failed ({proc.returncode}): {text}")

    def _registered(self, user: str, domain: str | None = None) -> bool:
        host = (domain or self.domain).replace(".", "%2e").replace("-", "%2d")
        return (self.directory / "data" / host / "accounts" / f"{user}.dat").exists()

    # ------------------------------------------------------------------ process

    def start_blocking(self) -> None:
        """Write config, register accounts, start prosody and wait until its port accepts."""
        if self.running:
            return
        if shutil.which(PROSODY) is None:
            raise TestServerError(f"'{PROSODY}' not found (install prosody, e.g. apt-get install prosody)")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.tls:
            self._make_cert()
        self._write_config()
        accounts = [(u, self.domain) for u in self.users] + self.outsiders
        self._register([a for a in accounts if not self._registered(*a)])
        self._process = start_process(
            [PROSODY, "-F", "--config", str(self.config_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(self.host, self.port, self.startup_timeout, "prosody", lambda: not self.running)
        except TestServerError as exc:
            self.stop_blocking()
            raise TestServerError(f"{exc}; see {self.log_file}: {self._log_tail()}") from None
        except BaseException:
            self.stop_blocking()
            raise

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop_blocking(self, timeout: float = 5.0) -> None:
        """Stop prosody (SIGTERM, SIGKILL after ``timeout``); keeps the directory for a restart."""
        proc, self._process = self._process, None
        stop_process(proc, timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        await super().stop(timeout)

    async def add_users(self, users: Iterable[str]) -> None:
        """Register more accounts; a running server is restarted to reload the shared roster."""
        if self._new_users(users) and self.running:
            await self.restart()
        # not running: start() writes the config and registers them


def main(argv: list[str] | None = None) -> int:
    parser = server_parser("python -m pyobs.testing.xmpp_server", "Run a throw-away prosody for pyobs.")
    parser.add_argument("--tls", action="store_true", help="self-signed certificate, STARTTLS required")
    parser.add_argument("--allow-plain", action="store_true", help="allow PLAIN auth without TLS")
    parser.add_argument("--prosody-gc", action="store_true", help="keep prosody's own (slower) GC pacing")
    args = parser.parse_args(argv)

    async def run() -> None:
        server = TestServer(
            args.users, domain=args.domain, password=args.password, directory=args.dir, port=args.port,
            tls=args.tls, allow_plain=args.allow_plain, tuned_gc=not args.prosody_gc,
        )  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            print(f"server={server.address}", flush=True)
            print(f"domain={server.domain}", flush=True)
            print(f"password={server.password}", flush=True)
            print(f"dir={server.directory}", flush=True)
            if server.tls:
                print(f"ca_file={server.ca_file}", flush=True)
            await stop.wait()

    try:
        asyncio.run(run())
    except TestServerError as exc:
        print(f"testserver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
