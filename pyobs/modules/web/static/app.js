// pyobs dashboard: one page, live over a WebSocket. Everything from the bus is shown as text.
"use strict";

const MAX_LINES = 500;
const PLOT_POINTS = 120;
const $ = (id) => document.getElementById(id);

let ws = null;
let modules = [];
const states = new Map();      // "module/IFace" -> state record
const series = new Map();      // "module/IWeather" -> [{t, readings}]
let nextCall = 1;
const pendingCalls = new Map(); // id -> {el, deadline, timer}
const permitted = new Map();    // module -> methods its acl: lets the dashboard call
// for tests and the latency figure: ms from a state's own time to it being on the page
window.pyobsStateLatencies = [];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 4 : 3);
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function parseTime(t) {
  if (typeof t === "number") return t * 1000;
  if (typeof t !== "string") return NaN;
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : t + "Z");
}

function hms(deg, hours) {
  let v = hours ? deg / 15 : Math.abs(deg);
  const sign = hours ? "" : (deg < 0 ? "−" : "+");
  const a = Math.floor(v); v = (v - a) * 60;
  const b = Math.floor(v); const c = (v - b) * 60;
  const pad = (x) => String(x).padStart(2, "0");
  return hours ? `${pad(a)}h${pad(b)}m${c.toFixed(1).padStart(4, "0")}s` : `${sign}${pad(a)}°${pad(b)}′${c.toFixed(0).padStart(2, "0")}″`;
}

// ------------------------------------------------------------------ login and connection

async function login(password) {
  const r = await fetch("/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                   body: JSON.stringify({password}), credentials: "same-origin"});
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}

function showLogin(message) {
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login-box").hidden = false;
  $("login-error").textContent = message || "";
  $("password").focus();
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${proto}//${location.host}/ws`);
  let opened = false;
  socket.onopen = () => {
    opened = true;
    ws = socket;
    $("conn").textContent = "live";
    $("conn").className = "badge good";
    $("login-box").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = false;
  };
  socket.onmessage = (m) => handle(JSON.parse(m.data));
  socket.onclose = () => {
    ws = null;
    $("conn").textContent = "offline";
    $("conn").className = "badge bad";
    if (!opened) { showLogin(); return; }   // refused at the handshake: not logged in (any more)
    setTimeout(connect, 1000);              // the server went away: try again
  };
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await login($("password").value);
    $("password").value = "";
    connect();
  } catch (err) {
    $("login-error").textContent = `login failed: ${err.message}`;
  }
});

$("logout").addEventListener("click", async () => {
  await fetch("/logout", {method: "POST", credentials: "same-origin"});
  if (ws) ws.close();
});

// ------------------------------------------------------------------ messages

function handle(msg) {
  switch (msg.t) {
    case "hello":
      $("whoami").textContent = `as ${msg.name}`;
      for (const [k, v] of Object.entries(msg.series || {})) series.set(k, v.map(weatherPoint));
      for (const [k, v] of Object.entries(msg.permitted || {})) permitted.set(k, v);
      setFleet(msg.modules);
      for (const s of msg.states) setState(s);
      $("events").replaceChildren(); $("logs").replaceChildren();
      for (const e of msg.events) addEvent(e);
      for (const l of msg.logs) addLog(l);
      break;
    case "fleet": setFleet(msg.modules); break;
    case "permitted": permitted.set(msg.module, msg.methods); markPermitted(msg.module); break;
    case "state": setState(msg); recordLatency(msg); break;
    case "event": addEvent(msg); break;
    case "log": addLog(msg); break;
    case "deadline": callDeadline(msg); break;
    case "progress": callProgress(msg); break;
    case "result": callResult(msg); break;
    case "error": console.warn(msg.message); break;
  }
}

function recordLatency(s) {
  const t = parseTime(s.value && s.value.time);
  if (!isNaN(t)) {
    window.pyobsStateLatencies.push({key: `${s.module}/${s.interface}`, ms: Date.now() - t});
    if (window.pyobsStateLatencies.length > 5000) window.pyobsStateLatencies.shift();
  }
}

// ------------------------------------------------------------------ fleet

function setFleet(list) {
  modules = list;
  const fleet = $("fleet");
  const keep = new Set(list.map((m) => `module-${m.name}`));
  for (const card of [...fleet.children]) if (!keep.has(card.id)) card.remove();
  for (const m of list) {
    let card = $(`module-${m.name}`);
    const sig = JSON.stringify([m.interfaces, m.methods.map((x) => x.signature)]);
    if (!card || card.dataset.sig !== sig) {
      const fresh = buildCard(m);
      fresh.dataset.sig = sig;
      if (card) card.replaceWith(fresh); else fleet.append(fresh);
      card = fresh;
      for (const [k, s] of states) if (s.module === m.name) setState(s);
      markPermitted(m.name);
    }
    const badge = card.querySelector("[data-role=state]");
    badge.textContent = m.state + (m.message ? `: ${m.message}` : "");
    badge.className = `badge state-${m.state}`;
  }
  $("fleet-count").textContent = `(${list.length} online)`;
}

function buildCard(m) {
  const card = el("div", {class: "module", id: `module-${m.name}`, "data-module": m.name},
    el("h3", {}, m.name, el("span", {"data-role": "state", class: "badge"}),
       m.label && m.label !== m.name ? el("span", {class: "muted"}, m.label) : null),
    el("div", {class: "interfaces"}, m.interfaces.join(" · ")),
    el("div", {class: "states", "data-role": "states"}));
  const details = el("details", {class: "methods"}, el("summary", {}, `Methods (${m.methods.length})`));
  for (const spec of m.methods) details.append(methodForm(m.name, spec));
  card.append(details);
  return card;
}

function markPermitted(module) {
  const allowed = permitted.get(module);
  const card = $(`module-${module}`);
  if (!allowed || !card) return;
  for (const form of card.querySelectorAll("form.method")) {
    const denied = !allowed.includes(form.dataset.method);
    form.classList.toggle("denied", denied);
    form.querySelector(".acl").textContent = denied ? "not permitted for the dashboard (acl)" : "";
  }
}

function methodForm(module, spec) {
  const form = el("form", {class: "method", id: `call-${module}-${spec.name}`, "data-method": spec.name});
  form.append(el("div", {}, el("b", {}, spec.name), " ", el("span", {class: "sig"}, spec.signature),
                 " ", el("span", {class: "acl"})));
  if (spec.doc) form.append(el("div", {class: "muted"}, spec.doc));
  for (const p of spec.params) {
    let input;
    if (p.choices) {
      input = el("select", {name: p.name});
      if (!p.required) input.append(el("option", {value: ""}, "(default)"));
      for (const c of p.choices) input.append(el("option", {value: String(c)}, String(c)));
    } else {
      input = el("input", {name: p.name, placeholder: p.required ? p.type : `${p.type} = ${fmt(p.default)}`});
      input.required = p.required;
    }
    form.append(el("label", {}, `${p.name} `, input));
  }
  form.append(el("button", {type: "submit", class: "call-btn"}, "call"));
  form.append(el("div", {class: "result", id: `result-${module}-${spec.name}`}));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const args = {};
    for (const p of spec.params) args[p.name] = form.elements[p.name].value;
    call(module, spec.name, args, form.querySelector(".result"));
  });
  return form;
}

function call(module, method, args, out) {
  if (!ws) { out.className = "result error"; out.textContent = "not connected"; return; }
  const id = nextCall++;
  out.className = "result running";
  out.textContent = "calling…";
  pendingCalls.set(id, {out, started: Date.now(), deadline: null, timer: null});
  ws.send(JSON.stringify({t: "call", id, module, method, args}));
}

function callDeadline(msg) {
  const c = pendingCalls.get(msg.id);
  if (!c) return;
  c.deadline = Date.now() + msg.seconds * 1000;
  if (!c.timer) c.timer = setInterval(() => {
    const left = Math.max(0, (c.deadline - Date.now()) / 1000);
    const notice = c.notice ? `, ${c.notice}` : "";
    c.out.textContent = `running ${((Date.now() - c.started) / 1000).toFixed(1)} s${notice}, deadline in ${left.toFixed(1)} s`;
  }, 200);
}

function callProgress(msg) {
  const c = pendingCalls.get(msg.id);
  if (!c) return;
  const percent = typeof msg.fraction === "number" ? `${Math.round(msg.fraction * 100)}% ` : "";
  c.notice = `${percent}${msg.message}`.trim();
}

function callResult(msg) {
  const c = pendingCalls.get(msg.id);
  if (!c) return;
  pendingCalls.delete(msg.id);
  if (c.timer) clearInterval(c.timer);
  if (msg.ok) {
    c.out.className = "result ok";
    c.out.textContent = msg.value === null || msg.value === undefined ? "✓ done" : `✓ ${JSON.stringify(msg.value)}`;
  } else {
    c.out.className = "result error";
    c.out.textContent = `✗ ${msg.error.type}: ${msg.error.message}`;
  }
}

// ------------------------------------------------------------------ state rendering

function weatherPoint(rec) {
  return {t: parseTime(rec.value.time), readings: rec.value.readings || []};
}

function setState(s) {
  const key = `${s.module}/${s.interface}`;
  states.set(key, s);
  if (s.interface === "IWeather") {
    const list = series.get(key) || [];
    const p = weatherPoint(s);
    if (!list.length || list[list.length - 1].t !== p.t) list.push(p);
    while (list.length > PLOT_POINTS) list.shift();
    series.set(key, list);
  }
  const card = $(`module-${s.module}`);
  if (!card) return;
  const box = card.querySelector("[data-role=states]");
  let div = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!div) {
    div = el("div", {"data-key": key, "data-interface": s.interface});
    box.append(div);
  }
  div.replaceChildren(el("span", {class: "iface"}, s.interface), ...render(s, key));
}

function render(s, key) {
  const v = s.value || {};
  switch (s.interface) {
    case "IPointingRaDec":
      return [el("span", {class: "big", "data-ra": v.ra, "data-dec": v.dec},
                 `RA ${hms(v.ra, true)}  Dec ${hms(v.dec, false)}`),
              el("span", {class: "muted"}, `  (${fmt(v.ra)}°, ${fmt(v.dec)}°)`)];
    case "IPointingAltAz":
      return [el("span", {class: "big", "data-alt": v.alt, "data-az": v.az}, `Alt ${v.alt.toFixed(2)}°  Az ${v.az.toFixed(2)}°`)];
    case "IMotion": case "IFocuser_motion":
      return [el("span", {class: `badge ${["slewing", "tracking", "initializing", "parking"].includes(v.status) ? "moving" : ""}`,
                          "data-status": v.status}, v.status)];
    case "IFocuser":
      return [el("span", {class: "big"}, `Focus ${fmt(v.focus)} mm`), el("span", {class: "muted"}, `  offset ${fmt(v.focus_offset)} mm`)];
    case "IExposure":
      return [el("div", {}, `${v.status}`, v.exposure_time_left ? ` · ${v.exposure_time_left.toFixed(1)} s left` : ""),
              el("progress", {max: 100, value: v.progress || 0, "data-progress": v.progress})];
    case "IReady": return [el("span", {class: `badge ${v.ready ? "yes" : "no"}`}, v.ready ? "ready" : "not ready")];
    case "IRunning": return [el("span", {class: `badge ${v.running ? "yes" : "no"}`}, v.running ? "running" : "stopped")];
    case "IWeather": return renderWeather(v, key);
    default: {
      const parts = Object.entries(v).filter(([k]) => k !== "time").map(([k, x]) => `${k}=${fmt(x)}`);
      return [el("span", {}, parts.join("  "))];
    }
  }
}

function renderWeather(v, key) {
  const table = el("table", {class: "readings"});
  const points = series.get(key) || [];
  for (const r of v.readings || []) {
    const values = points.map((p) => (p.readings.find((x) => x.sensor === r.sensor) || {}).value).filter((x) => typeof x === "number");
    table.append(el("tr", {"data-sensor": r.sensor}, el("td", {}, r.sensor), el("td", {}, `${fmt(r.value)} ${r.unit}`),
                    el("td", {}, sparkline(values))));
  }
  return [el("span", {class: `badge ${v.good ? "good" : "bad"}`}, v.good ? "good weather" : "bad weather"), table];
}

function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "plot");
  svg.setAttribute("viewBox", "0 0 90 22");
  if (values.length > 1) {
    const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
    const pts = values.map((x, i) => `${(i / (values.length - 1)) * 88 + 1},${21 - ((x - lo) / span) * 20}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.append(line);
  }
  return svg;
}

// ------------------------------------------------------------------ events and logs

function clock(t) {
  const d = new Date(parseTime(t));
  return isNaN(d) ? String(t) : d.toISOString().slice(11, 23);
}

function append(list, line) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(line);
  while (list.children.length > MAX_LINES) list.firstChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function addEvent(e) {
  const data = Object.entries(e.data || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(" ");
  const line = el("div", {class: "event", "data-sender": e.sender, "data-type": e.type},
                  el("span", {class: "t"}, clock(e.time)), ` ${e.sender} `, el("b", {}, e.type), ` ${data}`);
  filterEvent(line);
  append($("events"), line);
}

function filterEvent(line) {
  const m = $("event-module").value.trim(), t = $("event-type").value.trim().toLowerCase();
  line.hidden = (m && line.dataset.sender !== m) || (t && !line.dataset.type.toLowerCase().includes(t));
}

const LEVELS = {DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50};

function addLog(l) {
  const line = el("div", {class: `log-line lvl-${l.level}`, "data-sender": l.sender, "data-level": l.level},
                  el("span", {class: "t"}, String(l.time).slice(11, 23)), ` ${l.level} ${l.sender}: ${l.message}`);
  filterLog(line);
  append($("logs"), line);
}

function filterLog(line) {
  const m = $("log-module").value.trim(), min = LEVELS[$("log-level").value] || 0;
  line.hidden = (m && line.dataset.sender !== m) || (LEVELS[line.dataset.level] || 0) < min;
}

for (const id of ["event-module", "event-type"]) $(id).addEventListener("input", () => [...$("events").children].forEach(filterEvent));
for (const id of ["log-module", "log-level"]) $(id).addEventListener("input", () => [...$("logs").children].forEach(filterLog));

// ------------------------------------------------------------------ start

(async () => {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    history.replaceState(null, "", location.pathname);  // the token does not stay in the address bar
    try { await login(decodeURIComponent(m[1])); } catch (err) { showLogin(`login failed: ${err.message}`); return; }
  }
  connect();
})();
