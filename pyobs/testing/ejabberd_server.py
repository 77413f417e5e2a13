"""A throw-away ejabberd (Debian's 23.01 or newer) for tests, benchmarks and examples — not for production.

Starts ejabberd's Erlang VM directly (not through ``ejabberdctl``, which insists on the system's
``ejabberd`` user and ``/etc/ejabberd``) with everything private to one directory and loopback:
the config (the one ``docs/xmpp.md`` shows, see :func:`production_config`), the Mnesia spool, the
log, an Erlang node name and cookie of its own, its own ``epmd`` on a private port
(``ERL_EPMD_PORT``) and a fixed distribution port. Accounts are registered and the shared roster
group (``@all@``: every account) is created through ``mod_http_api`` on a loopback port — only the
test server has that listener.

Two or more of them form a cluster: ``EjabberdTestServer(cluster_of=first)`` shares the first's
domain, cookie and epmd and runs ``join_cluster`` when it starts::

    with EjabberdTestServer(["camera", "telescope"]) as a, EjabberdTestServer(cluster_of=a) as b:
        ...  # a.address and b.address serve the same domain, accounts, roster and pubsub

ejabberd 23.01 crashes (segfault of the whole VM) on a stanza nested about 3,000 levels deep;
measured here: 3,000 levels of ``<a>`` (21 KB) pass, 3,200 (22.5 KB) crash it. Every level costs
at least 7 bytes (``<a></a>``), so ``max_stanza_size: 16384`` bounds the depth to about 2,300 levels
and the server closes the stream of anyone sending more instead of dying. See docs/xmpp.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .process import ServerBase, TestServerError, free_port, server_parser, start_process, stop_process, wait_for_port

ERL = os.environ.get("PYOBS_ERL", "erl")
EPMD = os.environ.get("PYOBS_EPMD", "epmd")

#: ejabberd 23.01 segfaults on ~3,000 nesting levels (>= 21 KB); this keeps stanzas below that
MAX_STANZA_SIZE = 16384
#: messages a session's process may have queued before ejabberd closes it (bounded memory)
MAX_FSM_QUEUE = 10000
#: c2s shaper of the test server and the docs (bytes/s per connection; see docs/xmpp.md)
SHAPER_RATE = 1_000_000
SHAPER_BURST = 2_000_000


def ejabberd_libs() -> str | None:
    """The directory holding ejabberd's Erlang applications (Debian: /usr/lib/<arch>), or None."""
    explicit = os.environ.get("PYOBS_EJABBERD_LIBS")
    if explicit:
        return explicit
    for pattern in ("/usr/lib/*/ejabberd-*/ebin/ejabberd.app", "/usr/lib/ejabberd-*/ebin/ejabberd.app",
                    "/usr/local/lib/ejabberd-*/ebin/ejabberd.app"):  # fmt: skip
        found = sorted(glob.glob(pattern))
        if found:
            return str(Path(found[-1]).parent.parent.parent)
    return None


def available() -> str | None:
    """None if an ejabberd test server can run here, else why not."""
    if shutil.which(ERL) is None:
        return f"'{ERL}' not found (install ejabberd, e.g. apt-get install ejabberd)"
    if shutil.which(EPMD) is None:
        return f"'{EPMD}' not found (install erlang-base)"
    if ejabberd_libs() is None:
        return "ejabberd's Erlang applications not found (install ejabberd, e.g. apt-get install ejabberd)"
    return None


def production_config(
    domain: str,
    *,
    port: int = 5222,
    ip: str = "::",
    tls: bool = True,
    shaper_rate: int = SHAPER_RATE,
    tools: Iterable[str] = ("tool",),
) -> str:
    """The ejabberd.yml of docs/xmpp.md (the test server adds only loopback addresses and its API).

    ``tools``: accounts that only call modules; they may not create pubsub nodes (an empty list:
    every account may)."""
    tool_list = ", ".join(tools)
    tool_acl = f"  pyobs_tools: {{user: [{tool_list}]}}   # accounts that only call modules\n" if tool_list else ""
    deny_tools = "deny: pyobs_tools, " if tool_list else ""
    tls_lines = "    starttls_required: true\n" if tls else ""
    certfiles = f'certfiles: ["/etc/ejabberd/{domain}.pem"]\n' if tls else ""
    return f"""hosts: [{domain}]
{certfiles}loglevel: warning
listen:
  - port: {port}
    ip: "{ip}"
    module: ejabberd_c2s
{tls_lines}    shaper: c2s_shaper
    access: c2s
    # 23.01 segfaults on a stanza nested ~3,000 levels deep (>= 21 KB): bound the size below that
    max_stanza_size: {MAX_STANZA_SIZE}
    max_fsm_queue: {MAX_FSM_QUEUE}
auth_method: [internal]
auth_password_format: scram
disable_sasl_mechanisms: [digest-md5, x-oauth2]
acl:
  local: {{user_regexp: ""}}
{tool_acl}access_rules:
  local: {{allow: local}}
  c2s: {{allow: all}}
  pubsub_createnode: {{{deny_tools}allow: local}}
shaper:
  # the stock 'normal' (1,000 B/s) and the old advice (30,000 B/s) slow a fleet down, see below
  pyobs: {{rate: {shaper_rate}, burst_size: {2 * shaper_rate}}}
shaper_rules:
  c2s_shaper: pyobs
modules:
  mod_admin_extra: {{}}       # srg_create, srg_user_add
  mod_caps: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_shared_roster: {{}}
  mod_pubsub:                 # service host: pubsub.@HOST@
    access_createnode: pubsub_createnode
    plugins: [flat]
    default_node_config:
      max_items: 1
      persist_items: true
      deliver_payloads: true
      deliver_notifications: true
      send_last_published_item: never
      notify_retract: false
      publish_model: publishers         # only the node's owner publishes
      itemreply: publisher              # items name their publisher (receivers check it; docs/security.md)
"""


class EjabberdTestServer(ServerBase):
    """An ejabberd with a throw-away configuration on loopback (same interface as ``TestServer``).

    Args:
        users: account names to register (more with :meth:`add_users`).
        domain: the virtual host.
        password: the password of every account.
        directory: config, spool and log (a new temporary directory if None; a given one is kept).
        port: the c2s port (a free one if None).
        cluster_of: another (started) EjabberdTestServer to join as a cluster node: same domain,
            password, cookie and epmd.
        shaper_rate: bytes/s of the c2s shaper (the docs' value by default).
        tools: accounts that only call modules and may not create pubsub nodes (docs/xmpp.md,
            "Node ownership"); empty: every account may.
        outsiders: accounts outside the fleet (``name``, or ``name@host`` on another virtual host
            of this server): registered, but not in the shared roster group.
        startup_timeout: how long :meth:`start` waits for ejabberd to accept connections.
    """

    kind = "ejabberd"
    config_name = "ejabberd.yml"
    log_name = "ejabberd.log"

    def __init__(
        self,
        users: Iterable[str] = (),
        *,
        domain: str = "pyobs.test",
        password: str = "pyobs",
        directory: str | os.PathLike[str] | None = None,
        port: int | None = None,
        cluster_of: EjabberdTestServer | None = None,
        shaper_rate: int = SHAPER_RATE,
        tools: Iterable[str] = ("tool",),
        outsiders: Iterable[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self.cluster_of = cluster_of
        if cluster_of is not None:
            domain, password = cluster_of.domain, cluster_of.password
        super().__init__(users, outsiders, domain, password, directory)
        self.port = port or free_port(self.host)
        self.api_port = free_port(self.host)
        self.dist_port = free_port(self.host)
        self.shaper_rate = shaper_rate
        self.tools = list(tools)
        self.startup_timeout = startup_timeout
        tag = secrets.token_hex(3)
        self.node = f"pyobs{os.getpid()}{tag}@localhost"
        self.cookie: str = cluster_of.cookie if cluster_of is not None else secrets.token_hex(16)
        self.epmd_port: int = cluster_of.epmd_port if cluster_of is not None else free_port(self.host)
        self._epmd: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------------ setup

    def config_text(self) -> str:
        """The docs' configuration on loopback, plus the test server's own API listener."""
        base = production_config(
            self.domain, port=self.port, ip=self.host, tls=False, shaper_rate=self.shaper_rate,
            tools=self.tools,
        )  # fmt: skip
        head, sep, rest = base.partition("auth_method:")
        api = f"""  # test server only: registration and shared roster over HTTP on loopback
  - port: {self.api_port}
    ip: "{self.host}"
    module: ejabberd_http
    request_handlers: {{/api: mod_http_api}}
"""
        perms = f"""api_permissions:
  "test server API on loopback":
    from: [mod_http_api]
    who: {{ip: "{self.host}/32"}}
    what: ["*"]
"""
        hosts = [self.domain, *sorted({h for _, h in self.outsiders if h != self.domain})]
        head = head.replace(f"hosts: [{self.domain}]", f"hosts: [{', '.join(hosts)}]", 1)
        return "# generated by pyobs.testing.ejabberd_server; throw-away\n" + head + api + perms + sep + rest

    def _env(self) -> dict[str, str]:
        libs = ejabberd_libs()
        assert libs is not None
        env = dict(os.environ)
        env.update(
            EJABBERD_CONFIG_PATH=str(self.config_file),
            EJABBERD_LOG_PATH=str(self.log_file),
            ERL_LIBS=libs,
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_CRASH_DUMP=str(self.directory / "erl_crash.dump"),
            HOME=str(self.directory),
        )
        return env

    def _start_epmd(self) -> None:
        if self.cluster_of is not None or (self._epmd is not None and self._epmd.poll() is None):
            return  # a cluster node uses the first node's epmd
        epmd = self._epmd = start_process(
            [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.host, self.epmd_port, 5.0, "epmd", lambda: epmd.poll() is not None)

    # ------------------------------------------------------------------ process

    def start_blocking(self) -> None:
        """Write the config, start epmd and ejabberd, join the cluster, register the accounts."""
        if self.running:
            return
        why = available()
        if why is not None:
            raise TestServerError(why)
        (self.directory / "spool").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        self._start_epmd()
        cmd = [
            ERL, "-noinput", "-sname", self.node, "-setcookie", self.cookie,
            "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
            "-kernel", "inet_dist_listen_min", str(self.dist_port),
            "-kernel", "inet_dist_listen_max", str(self.dist_port),
            "-mnesia", "dir", f'"{self.directory / "spool"}"',
            "-s", "ejabberd",
        ]  # fmt: skip
        out = open(self.directory / "stdout.log", "ab")
        try:
            self._process = start_process(cmd, env=self._env(), cwd=self.directory, stdout=out, stderr=out)
        finally:
            out.close()
        try:
            self._wait_ready()
            if self.cluster_of is not None:
                self._join_cluster()
            self._setup_accounts(self.users)
        except BaseException:
            self.stop_blocking()
            raise

    def _wait_ready(self) -> None:
        try:
            wait_for_port(self.host, self.port, self.startup_timeout, "ejabberd", lambda: not self.running,
                          ready=lambda: self.api("status", {}))  # fmt: skip
        except TestServerError as exc:
            raise TestServerError(f"{exc}; see {self.log_file}: {self._log_tail()}") from None

    def _log_tail(self, lines: int = 5) -> str:
        texts = []
        for path in (self.log_file, self.directory / "stdout.log"):
            with contextlib.suppress(OSError):
                texts += path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(texts) or "(no log)"

    def api(self, command: str, args: dict[str, object], timeout: float = 30.0) -> object:
        """Run an ejabberd command through the test server's mod_http_api (TestServerError on failure)."""
        request = urllib.request.Request(
            f"http://{self.host}:{self.api_port}/api/{command}", data=json.dumps(args).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise TestServerError(f"ejabberd {command} failed ({exc.code}): {body}") from None
        except (OSError, ValueError) as exc:
            raise TestServerError(f"ejabberd {command} failed: {exc}") from None

    def erl_rpc(self, module: str, function: str, args: str, timeout: float = 60.0) -> str:
        """``rpc:call`` on this node from a hidden Erlang node (as ejabberdctl does); ``args`` is an
        Erlang list; returns the printed result."""
        code = f"R = rpc:call('{self.node}', {module}, {function}, {args}), io:format(\"~p~n\", [R]), halt()."
        ctl = f"ctl{secrets.token_hex(3)}@localhost"
        cmd = [ERL, "-noinput", "-hidden", "-sname", ctl, "-setcookie", self.cookie, "-eval", code]
        what = f"{module}:{function}({args})"
        try:
            proc = subprocess.run(cmd, env=self._env(), cwd=self.directory, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestServerError(f"ejabberd: {what} did not finish within {timeout} s") from None
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0 or "badrpc" in out or "error" in out:
            raise TestServerError(f"ejabberd: {what} failed: {out} {proc.stderr.decode(errors='replace')}")
        return out

    def _join_cluster(self) -> None:
        assert self.cluster_of is not None
        # as `ejabberdctl join_cluster` does: from a hidden Erlang node, because joining restarts
        # ejabberd on this node (an API call would be ended with it)
        self.erl_rpc("ejabberd_admin", "join_cluster", f'[<<"{self.cluster_of.node}">>]')
        self._wait_ready()
        end = time.monotonic() + self.startup_timeout
        while True:
            try:
                nodes = self.api("list_cluster", {})
            except TestServerError as exc:
                nodes = str(exc)
            if isinstance(nodes, list) and self.cluster_of.node in nodes and self.node in nodes:
                return
            if time.monotonic() > end:
                raise TestServerError(f"{self.node} did not join {self.cluster_of.node}: {nodes}")
            time.sleep(0.05)

    def _setup_accounts(self, users: list[str]) -> None:
        if self.cluster_of is None:
            groups = self.api("srg_list", {"host": self.domain})
            if not (isinstance(groups, list) and "pyobs" in groups):
                self.api("srg_create", {"group": "pyobs", "host": self.domain, "label": "pyobs",
                                        "description": "pyobs fleet", "display": "pyobs"})  # fmt: skip
                if not self.outsiders:  # everybody of the host (as docs/xmpp.md shows)
                    self.api("srg_user_add", {"user": "@all@", "host": self.domain, "group": "pyobs",
                                              "grouphost": self.domain})  # fmt: skip

        def register(account: tuple[str, str]) -> None:
            user, host = account
            try:
                self.api("register", {"user": user, "host": host, "password": self.password})
            except TestServerError as exc:
                if "already registered" not in str(exc) and "exists" not in str(exc):
                    raise
            if self.outsiders and host == self.domain and account not in self.outsiders:
                # with outsiders: the fleet's accounts one by one instead of @all@
                self.api("srg_user_add", {"user": user, "host": host, "group": "pyobs", "grouphost": self.domain})

        accounts = [(u, self.domain) for u in users]
        if self.cluster_of is None and users is self.users:
            accounts += self.outsiders
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(register, accounts))

    def stop_blocking(self, timeout: float = 10.0) -> None:
        """Stop ejabberd (SIGTERM, SIGKILL after ``timeout``) and our epmd; keeps the directory."""
        proc, self._process = self._process, None
        stop_process(proc, timeout)
        self._stop_epmd()

    def kill_blocking(self) -> None:
        """Kill ejabberd at once (SIGKILL: a node dying without a word)."""
        proc, self._process = self._process, None
        stop_process(proc, 10.0, signal.SIGKILL)

    def _stop_epmd(self) -> None:
        epmd, self._epmd = self._epmd, None
        stop_process(epmd)

    async def stop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self._stop_keep_epmd, timeout)

    def _stop_keep_epmd(self, timeout: float) -> None:
        epmd, self._epmd = self._epmd, None
        try:
            self.stop_blocking(timeout)
        finally:
            self._epmd = epmd  # a restart uses it again; cleanup() stops it

    async def kill(self) -> None:
        await asyncio.to_thread(self.kill_blocking)

    async def add_users(self, users: Iterable[str]) -> None:
        """Register more accounts (the @all@ shared roster group includes them at once)."""
        new = self._new_users(users)
        if new and self.running:
            await asyncio.to_thread(self._setup_accounts, new)

    def cleanup(self) -> None:
        """Stop our epmd and remove a temporary directory (ejabberd must be stopped)."""
        self._stop_epmd()
        super().cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = server_parser("python -m pyobs.testing.ejabberd_server", "Run a throw-away ejabberd for pyobs tests.")
    parser.add_argument("--nodes", type=int, default=1, help="cluster nodes (each prints its server=)")
    args = parser.parse_args(argv)
    servers: list[EjabberdTestServer] = []
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        first = EjabberdTestServer(args.users, domain=args.domain, password=args.password, directory=args.dir,
                                   port=args.port)  # fmt: skip
        first.start_blocking()
        servers.append(first)
        for i in range(1, args.nodes):
            node = EjabberdTestServer(directory=None if args.dir is None else f"{args.dir}/node{i}", cluster_of=first)
            node.start_blocking()
            servers.append(node)
        for s in servers:
            print(f"server={s.address}", flush=True)
        print(f"domain={first.domain}", flush=True)
        print(f"password={first.password}", flush=True)
        print(f"dir={first.directory}", flush=True)
        while not stop["now"]:
            signal.pause()
    except TestServerError as exc:
        print(f"testserver: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in reversed(servers):
            s.stop_blocking()
            s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
