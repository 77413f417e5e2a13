"""docs/xmpp.md shows the ejabberd configuration the tests run with, and the prosody settings the
test prosody uses (node ownership)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pyobs.testing.ejabberd_server import EjabberdTestServer, production_config
from pyobs.testing.xmpp_server import SERVER_PLUGINS, TestServer

DOCS = Path(__file__).resolve().parents[2] / "docs" / "xmpp.md"


def _section(title: str) -> str:
    text = DOCS.read_text()
    start = text.index(title)
    end = text.find("\n### ", start + len(title))
    return text[start : end if end > 0 else None]


def test_the_docs_show_the_tested_ejabberd_config() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", _section("### ejabberd"), re.S)
    assert blocks, "no ejabberd.yml in docs/xmpp.md"
    assert blocks[0] == production_config("example.org")
    # the test server runs exactly that, on loopback without TLS, plus its own API listener
    server = EjabberdTestServer(["camera"], domain="example.org")
    try:
        tested = yaml.safe_load(server.config_text())
        shown = yaml.safe_load(blocks[0])
        for key in ("auth_method", "auth_password_format", "disable_sasl_mechanisms", "acl", "shaper",
                    "shaper_rules", "modules", "hosts"):  # fmt: skip
            assert tested[key] == shown[key], key
        assert tested["access_rules"] == shown["access_rules"]
        c2s = dict(shown["listen"][0], ip=server.host, port=server.port)
        del c2s["starttls_required"]
        assert tested["listen"][0] == c2s
        assert [entry["module"] for entry in tested["listen"]] == ["ejabberd_c2s", "ejabberd_http"]
    finally:
        server.cleanup()


def test_the_docs_show_the_prosody_node_ownership_settings() -> None:
    shown = _section("### Prosody")
    assert 'modules_enabled = { "pyobs_nodes" }' in shown and "plugin_paths" in shown
    assert (SERVER_PLUGINS / "mod_pyobs_nodes.lua").exists()
    server = TestServer(["camera"])
    try:
        server._write_config()
        config = server.config_file.read_text()
        assert f'plugin_paths = {{ "{SERVER_PLUGINS}" }}' in config
        assert 'modules_enabled = { "pyobs_nodes" }' in config
    finally:
        server.cleanup()
