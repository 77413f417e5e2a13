"""Joining a bus as a tool: a Comm without a module, from a config file or command-line flags.

* ``--config FILE`` with a ``comm:`` mapping (the same as a module's), or a file that *is* a comm
  mapping (``class: pyobs.comm.xmpp.XmppComm``), joins that bus;
* ``--config FILE`` of a ``MultiModule`` whose modules talk over ``LocalComm`` runs those modules in
  this process and joins their in-process network (there is no other way to reach it);
* ``--xmpp user@domain [--server host:port]`` with the password from ``--password-file`` or the
  environment variable ``PYOBS_PASSWORD`` (never on the command line: it would show in ``ps``);
* ``--dbus NAME [--bus session|system|ADDRESS] [--dbus-prefix PREFIX]``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyobs.comm import Comm
from pyobs.object import Object, get_object
from pyobs.utils.exceptions import ConfigError

#: environment variable with the password of --xmpp
PASSWORD_ENV = "PYOBS_PASSWORD"


@dataclass
class BusOptions:
    config: str | None = None
    xmpp: str | None = None
    server: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    no_tls: bool = False
    dbus: str | None = None
    bus: str = "session"
    dbus_prefix: str | None = None
    name: str | None = None
    timeout: float = 10.0


def read_password(path: str | None) -> str:
    """The password from a file (first line) or from $PYOBS_PASSWORD; ConfigError if neither."""
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError("--password-file", f"cannot read {path}: {exc.strerror or exc}") from None
        return lines[0].strip() if lines else ""
    value = os.environ.get(PASSWORD_ENV)
    if value is None:
        raise ConfigError("--xmpp", f"no password: give --password-file FILE or set ${PASSWORD_ENV}")
    return value


def _comm_config(options: BusOptions) -> dict[str, Any] | None:
    """The comm mapping from flags, or None when a config file decides."""
    if options.xmpp:
        if options.dbus:
            raise ConfigError("--xmpp", "give either --xmpp or --dbus, not both")
        if "@" not in options.xmpp:
            raise ConfigError("--xmpp", f"expected user@domain, got {options.xmpp!r}")
        cfg: dict[str, Any] = {
            "class": "pyobs.comm.xmpp.XmppComm",
            "jid": options.xmpp,
            "password": read_password(options.password_file),
            "timeout": options.timeout,
        }
        if options.server:
            cfg["server"] = options.server
        if options.ca_file:
            cfg["ca_file"] = options.ca_file
        if options.no_tls:
            cfg["use_tls"] = False
        return cfg
    if options.dbus:
        cfg = {"class": "pyobs.comm.dbus.DbusComm", "name": options.dbus, "bus": options.bus}
        cfg["timeout"] = options.timeout
        if options.dbus_prefix:
            cfg["prefix"] = options.dbus_prefix
        return cfg
    return None


@contextlib.asynccontextmanager
async def join_bus(options: BusOptions) -> AsyncIterator[Comm]:
    """An opened Comm without a module on the bus the options name; closed (with whatever this
    process hosts for a LocalComm config) at the end."""
    from pyobs.cli.main import load_config

    cfg = _comm_config(options)
    host: Object | None = None
    if cfg is None:
        if not options.config:
            raise ConfigError("bus", "say which bus to join: --config FILE, --xmpp user@domain or --dbus NAME")
        config = load_config(options.config)
        if "comm" in config and "class" in config:
            # a module's own config: its account is the module's, and logging in with it would
            # log the running module out (XMPP allows one session per account)
            raise ConfigError(
                options.config,
                f"this is the config of a module ({config['class']}); give pyobs-comm a file with its own "
                "'comm:' (its own account) and no 'class:'",
            )
        if "comm" in config:
            cfg = config["comm"]
        elif str(config.get("class", "")).endswith("Comm"):
            cfg = config
        elif str(config.get("class", "")).endswith("MultiModule"):
            host = _build(config, options.config)
        else:
            raise ConfigError(
                options.config, "expected a 'comm:' mapping, a comm config (class: ...Comm) or a MultiModule config"
            )
    if host is not None:
        from pyobs.comm.local import LocalComm
        from pyobs.modules import MultiModule

        assert isinstance(host, MultiModule)
        comm: Comm = LocalComm(options.name or "pyobs-comm", network=host.network, timeout=options.timeout)
        try:
            await host.open()
        except BaseException:
            await host.close()  # the modules that did open
            raise
    else:
        assert cfg is not None
        try:
            comm = get_object(cfg, Comm, key="comm")
        except ConfigError as exc:
            raise ConfigError(f"{options.config or 'flags'}: {exc.key}", exc.problem) from None
    try:
        await comm.open()
        yield comm
    finally:
        try:
            await comm.close()
        finally:
            if host is not None:
                await host.close()


def _build(config: dict[str, Any], path: str) -> Object:
    try:
        return get_object(config, Object)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.key}" if exc.key else path, exc.problem) from None
