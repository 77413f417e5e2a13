"""A private ``dbus-daemon`` for tests and benchmarks, on a unix socket in a directory of ours
(never the host's bus); the environment's ``DBUS_*`` variables are not passed on.

``stock=True`` runs it with the distribution's session configuration (what the benchmark measures);
otherwise with a session-like one of ours with raised limits and without the host's activatable
services (nothing gets auto-started). A restarted daemon listens on the same address, as a
system's bus does after a restart.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
from pathlib import Path

from .process import TestServerError, start_process, stop_process

DBUS_DAEMON = os.environ.get("PYOBS_DBUS_DAEMON", "dbus-daemon")

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
</busconfig>
"""


def available() -> bool:
    return shutil.which(DBUS_DAEMON) is not None


class DbusDaemon:
    """A private ``dbus-daemon`` listening on ``<directory>/bus``; :meth:`start` returns its address."""

    def __init__(self, directory: Path, stock: bool = False) -> None:
        self.directory = directory
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        self.stock = stock
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 10.0) -> str:
        if not available():
            raise TestServerError(f"'{DBUS_DAEMON}' not found (install dbus, e.g. apt-get install dbus)")
        if self.socket.exists():  # left behind by a daemon that was killed
            self.socket.unlink()
        if self.stock:
            config = ["--session", f"--address={self.address}"]
        else:
            (self.directory / "bus.conf").write_text(_CONFIG.format(address=self.address))
            config = [f"--config-file={self.directory / 'bus.conf'}"]
        errors = self.directory / "dbus-daemon.log"
        with errors.open("ab") as log:
            proc = self.proc = start_process(
                [DBUS_DAEMON, *config, "--nofork", "--nopidfile", "--nosyslog", "--print-address=1"],
                stdout=subprocess.PIPE, stderr=log,
                env={k: v for k, v in os.environ.items() if not k.startswith("DBUS_")},
            )  # fmt: skip
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:  # the daemon prints its address once it listens
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            self.stop()
            why = errors.read_text(errors="replace").strip() or f"no address printed within {timeout} s"
            raise TestServerError(f"dbus-daemon did not start: {why}")
        return line

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_process(proc, 5.0, sig)
        if proc.stdout is not None:
            proc.stdout.close()
