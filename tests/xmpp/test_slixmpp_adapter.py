"""The private and undocumented slixmpp names pyobs/comm/xmpp/client.py (the one adapter to
slixmpp's internals) relies on. When slixmpp changes them, this fails — before the stanza bounds
silently stop applying or the fast SCRAM path silently stops being used. (The same adapter against a
real server: test_client_scoping.py.)"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import subprocess
import sys
from xml.etree.ElementTree import fromstring

import slixmpp
from slixmpp.features.feature_mechanisms import FeatureMechanisms
from slixmpp.features.feature_mechanisms.stanza import Challenge
from slixmpp.util.sasl.mechanisms import SCRAM
from slixmpp.xmlstream.xmlstream import XMLStream

from pyobs.comm.xmpp.client import SLIXMPP_INTERNALS, SLIXMPP_PRIVATE, Client


def test_every_stanza_of_the_stream_passes_spawn_event() -> None:
    # data_received hands each complete top-level element to _spawn_event: the one place to check them
    source = inspect.getsource(XMLStream.data_received)
    assert "self._spawn_event(xml)" in source
    assert list(inspect.signature(XMLStream._spawn_event).parameters) == ["self", "xml"]


async def test_the_private_names_exist() -> None:
    client = slixmpp.ClientXMPP("a@b.c/d", "x")
    for name in SLIXMPP_PRIVATE:
        assert hasattr(client, name) or hasattr(XMLStream, name), name
    # the send-queue task that Client.stop_send_task ends: started by connect(), a future
    assert "self._run_out_filters = asyncio.ensure_future(" in inspect.getsource(XMLStream.connect)


def test_the_undocumented_names_of_the_fast_scram_path_exist() -> None:
    assert SLIXMPP_INTERNALS == ("feature_mechanisms.mech", "SCRAM.Hi", "SCRAM.hash")
    # the plugin keeps the mechanism it chose in `mech`, and hands challenges to it
    assert "self.mech = sasl.choose(" in inspect.getsource(FeatureMechanisms._send_auth)
    assert "self.mech.process(" in inspect.getsource(FeatureMechanisms._handle_challenge)
    assert "Challenge.tag_name()" in inspect.getsource(FeatureMechanisms.plugin_init)
    # SCRAM derives the salted password with self.Hi(password, salt, iterations) in its 2nd step
    assert list(inspect.signature(SCRAM.Hi).parameters) == ["self", "text", "salt", "iterations"]
    assert "self.Hi(" in inspect.getsource(SCRAM.process_2)
    mech = SCRAM("SCRAM-SHA-256", {"password": b"pw"}, {"encrypted": True, "unencrypted_scram": True})
    assert mech.hash().name == "sha256"


async def test_the_fast_salted_password_is_slixmpps_and_only_this_clients_mechanism_gets_it() -> None:
    client = Client("a@b.c/d", "x", on_iq=bool, on_message=bool, on_presence=bool)
    plugin = client.plugin["feature_mechanisms"]
    plugin.mech = SCRAM("SCRAM-SHA-1", {"password": b"pw"}, {"encrypted": True, "unencrypted_scram": True})
    salt = base64.b64decode(b"c2FsdHNhbHQ=")
    slow = plugin.mech.Hi(b"pw", salt, 4096)
    assert client._scope_fast_scram(Challenge(client)) is not None
    assert "Hi" in vars(plugin.mech)
    assert plugin.mech.Hi(b"pw", salt, 4096) == slow == hashlib.pbkdf2_hmac("sha1", b"pw", salt, 4096)
    assert SCRAM.Hi.__module__ == "slixmpp.util.sasl.mechanisms"  # the class is untouched
    other = SCRAM("SCRAM-SHA-1", {"password": b"pw"}, {"encrypted": True, "unencrypted_scram": True})
    assert "Hi" not in vars(other)


def test_importing_the_transport_changes_nothing_process_wide() -> None:
    # a fresh interpreter: slixmpp's SCRAM and slixmpp's loggers as slixmpp left them
    probe = (
        "import logging, pyobs.comm.xmpp, pyobs.comm.xmpp.client\n"
        "from slixmpp.util.sasl.mechanisms import SCRAM\n"
        "assert SCRAM.Hi.__module__ == 'slixmpp.util.sasl.mechanisms', SCRAM.Hi\n"
        "levels = {n: logging.getLogger(n).level for n in logging.root.manager.loggerDict if n.startswith('slixmpp')}\n"
        "assert set(levels.values()) == {logging.NOTSET}, levels\n"
        "print('untouched')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "untouched", done.stderr


async def test_the_send_task_ends() -> None:
    client = Client("a@b.c/d", "x", on_iq=bool, on_message=bool, on_presence=bool)
    client.connect("127.0.0.1", 9)  # the task starts with connect(), whatever the connection does
    task = client._run_out_filters
    assert isinstance(task, asyncio.Future) and not task.done()
    client.cancel_connection_attempt()
    await client.stop_send_task()
    assert task.done()


async def test_an_oversized_stanza_reaches_neither_the_transport_nor_slixmpp() -> None:
    seen: list[str] = []
    refused: list[str] = []
    client = Client(
        "a@b.c/d", "x",
        on_iq=lambda xml: seen.append("iq") or True,
        on_message=lambda xml: seen.append("message") or True,
        on_presence=lambda xml: seen.append("presence") or True,
        on_oversized=lambda xml, problem: refused.append(problem),
    )  # fmt: skip
    client.session_up = True
    deep = "<a>" * 100 + "</a>" * 100
    client._spawn_event(fromstring(f'<message xmlns="jabber:client"><x>{deep}</x></message>'))
    assert refused == ["nested too deeply (more than 64 levels)"] and seen == []
    client._spawn_event(fromstring('<message xmlns="jabber:client"><body>hi</body></message>'))
    assert seen == ["message"]
