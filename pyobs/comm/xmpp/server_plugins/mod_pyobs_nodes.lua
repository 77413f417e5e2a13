-- mod_pyobs_nodes: nobody creates, publishes to or administers another module's pyobs nodes.
--
-- pyobs nodes are named pyobs:event:<module>:<Event>:<v> and pyobs:state:<module>:<Interface>:<v>
-- (the pyobs wire format). Prosody lets only pubsub admins create nodes, and pyobs accounts are
-- all admins of the pubsub component (docs/xmpp.md), so any of them could create, publish to or
-- reconfigure any module's nodes; with this module only <module>@<domain> may change its own.
-- Reading and subscribing stay open to everybody. From pyobs-comm (docs/xmpp.md, "Node ownership").
--
--   plugin_paths = { "/usr/local/lib/prosody-pyobs" }      -- where this file is
--   Component "pubsub.example.org" "pubsub"
--       modules_enabled = { "pyobs_nodes" }

local jid_split = require "util.jid".split;
local st = require "util.stanza";

-- child elements that only read or subscribe
local harmless = { subscribe = true, unsubscribe = true, items = true, options = true, subscriptions = true };

local function check(event)
	local stanza = event.stanza;
	local pubsub = stanza.tags[1];
	if not pubsub or stanza.attr.type ~= "set" and pubsub.attr.xmlns == "http://jabber.org/protocol/pubsub" then
		return; -- reads are for everybody
	end
	local user = jid_split(stanza.attr.from) or "";
	local owner_ns = pubsub.attr.xmlns == "http://jabber.org/protocol/pubsub#owner";
	for _, child in ipairs(pubsub.tags) do
		local node = child.attr.node;
		local kind, name = (node or ""):match("^pyobs:(%a+):([^:]+):");
		if (kind == "event" or kind == "state") and name:lower() ~= user:lower()
			and (owner_ns or not harmless[child.name]) then
			module:log("info", "refused %s of %s's pyobs node %s to %s", child.name, name, node, stanza.attr.from);
			event.origin.send(st.error_reply(stanza, "auth", "forbidden", "this pyobs node belongs to the module " .. name));
			return true;
		end
	end
end

module:hook("iq/host/http://jabber.org/protocol/pubsub:pubsub", check, 10);
module:hook("iq/host/http://jabber.org/protocol/pubsub#owner:pubsub", check, 10);
