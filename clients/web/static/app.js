// The lonja web console: registry, service and changes pages over the console's JSON API.
// Every text from the network goes into the page as text (textContent), never as markup.
// The token lives in sessionStorage and travels in the Authorization header only.
"use strict";

const MAX_ROWS = 2000;
const TOKEN_KEY = "lonja.token";
const state = { names: {}, live: true, nsUp: true, nsMessage: "", view: null, loaded: false, stream: null,
                refreshTimer: null, renderQueued: false, changes: [], service: null };

// -- helpers --------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers(extra) {
  const h = Object.assign({ "Accept": "application/json" }, extra || {});
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers(), cache: "no-store" }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const error = (body && body.error) || { type: "HTTPError", message: response.statusText, status: response.status };
    if (error.type === "NameServerUnreachable") showNs(false, error.message);
    throw error;
  }
  return body;
}

function ago(seconds) {
  if (!seconds) return "never";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function statusClass(status) { return "status " + String(status).replace(/\s+/g, "-"); }

function instancesOf(entry) {
  return entry.instances && entry.instances.length ? entry.instances
    : [{ uri: entry.uri, status: "unknown", last_seen: 0 }];
}

function serviceHref(name) { return "#/service/" + encodeURIComponent(name); }

// A streamed body, part by part as each arrives whole: `onPart` gets the text up to each `separator`.
async function readParts(response, separator, onPart) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf(separator)) >= 0) {
      const part = buffer.slice(0, end);
      buffer = buffer.slice(end + separator.length);
      onPart(part);
    }
  }
}

// -- the name server banner and the change stream -------------------------------------------------

function showNs(up, message) {
  state.nsUp = up;
  state.nsMessage = message || "";
  const banner = document.getElementById("banner");
  if (up) { banner.hidden = true; banner.textContent = ""; return; }
  banner.textContent = "The name server does not answer" + (message ? ": " + message : "") + " — retrying…";
  banner.hidden = false;
}

function onEvent(kind, data) {
  if (kind === "ns") {
    state.live = data.live !== false;
    showNs(data.up, data.message);
  } else if (kind === "reset") {
    scheduleRefresh(0);
  } else if (kind === "change") {
    applyChange(data);
    state.changes.push(data);
    if (state.changes.length > 1000) state.changes.shift();
    if (state.view && state.view.onChange) state.view.onChange(data);
  }
}

async function follow() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  let retry = 2000;
  try {
    const response = await fetch("/api/changes/stream", { headers: headers({ "Accept": "text/event-stream" }),
                                                         signal: controller.signal, cache: "no-store" });
    if (!response.ok) {
      let error = null;
      try { error = (await response.json()).error; } catch (e) { error = null; }
      if (error && error.status === 403) { showNs(true); setIdentity(null, error.message); retry = 10000; }
      else showNs(false, error ? error.message : response.statusText);
    } else {
      await readParts(response, "\n\n", (chunk) => {
        let kind = "message", data = "";
        for (const line of chunk.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) onEvent(kind, JSON.parse(data));
      });
    }
  } catch (e) {
    if (controller.signal.aborted) return;
    showNs(false, "the web console itself does not answer");
  }
  if (state.stream !== controller) return;
  setTimeout(() => { if (state.stream === controller) { follow(); scheduleRefresh(0); } }, retry);
}

// -- the registry's state, kept in step with the change log ---------------------------------------

function applyChange(change) {
  const entry = state.names[change.name];
  if (change.kind === "removed") {
    if (!entry) return;
    entry.instances = (entry.instances || []).filter((i) => i.uri !== change.uri);
    if (!entry.instances.length) delete state.names[change.name];
  } else {
    const target = entry || (state.names[change.name] = { uri: change.uri, metadata: [], instances: [] });
    const instance = (target.instances || []).find((i) => i.uri === change.uri);
    if (instance) { instance.status = change.status; instance.last_seen = change.time; }
    else target.instances.push({ uri: change.uri, status: change.status, last_seen: change.time });
  }
  state.flash = change.name;
  queueRender();
  scheduleRefresh(1500);  // metadata and last-seen times come with the full list
}

function scheduleRefresh(delay) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, delay);
}

async function refresh() {
  try {
    const answer = await api("/api/names");
    state.names = answer.names;
    state.live = answer.live;
    state.ns = answer.ns;
    state.loaded = true;
    showNs(true);
    queueRender();
  } catch (error) {
    state.loadError = error;
    queueRender();
  }
  if (!state.live) scheduleRefresh(5000);  // no change log (a plain Pyro5 name server): poll
}

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    if (state.view && state.view.render) state.view.render();
  });
}

// -- the registry page ----------------------------------------------------------------------------

function registryView() {
  const filter = el("input", { id: "filter", type: "search", placeholder: "filter: text in name or tags, or a glob like shop.*",
                               "aria-label": "filter", value: sessionStorage.getItem("lonja.filter") || "" });
  const status = el("select", { id: "status-filter", "aria-label": "status" },
    el("option", { value: "", text: "any status" }),
    ["serving", "not serving", "unreachable", "unknown"].map((s) => el("option", { value: s, text: s })));
  const summary = el("p", { class: "summary muted", id: "summary" });
  const body = el("tbody", { id: "names" });
  const more = el("p", { class: "more muted", id: "more", hidden: true });
  const root = el("section", {},
    el("h1", { text: "Registry" }), summary,
    el("div", { class: "tools" }, filter, status),
    el("table", { id: "names-table" },
      el("thead", {}, el("tr", {}, el("th", { text: "Name" }), el("th", { text: "Instances" }),
                                 el("th", { text: "Metadata" }))),
      body),
    more);
  filter.addEventListener("input", () => { sessionStorage.setItem("lonja.filter", filter.value); queueRender(); });
  status.addEventListener("change", queueRender);

  function matcher() {
    const text = filter.value.trim();
    const wanted = status.value;
    let test = () => true;
    if (/[*?[]/.test(text)) {
      const pattern = new RegExp("^" + text.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
      test = (name) => pattern.test(name);
    } else if (text) {
      const lower = text.toLowerCase();
      test = (name, entry) => name.toLowerCase().includes(lower)
        || entry.metadata.some((tag) => tag.toLowerCase().includes(lower));
    }
    return (name, entry) => test(name, entry) && (!wanted || instancesOf(entry).some((i) => i.status === wanted));
  }

  function row(name, entry) {
    const tags = entry.metadata.filter((tag) => !tag.startsWith("class:"));
    return el("tr", { "data-name": name, class: state.flash === name ? "flash" : null },
      el("td", { class: "name" }, el("a", { href: serviceHref(name), text: name })),
      el("td", {}, instancesOf(entry).map((i) => el("div", { class: "inst" },
        el("span", { class: statusClass(i.status), text: i.status }),
        el("span", { class: "seen muted", "data-seen": i.last_seen || 0, text: ago(i.last_seen) }),
        el("span", { class: "uri mono", text: i.uri })))),
      el("td", {}, tags.map((tag) => el("span", { class: "tag", text: tag }))));
  }

  function render() {
    if (!state.loaded) {
      summary.textContent = state.loadError ? "Cannot list the names: " + state.loadError.message : "Loading…";
      return;
    }
    const all = Object.keys(state.names).sort();
    const match = matcher();
    const shown = all.filter((name) => match(name, state.names[name]));
    const counts = {};
    let instances = 0;
    for (const name of all) for (const i of instancesOf(state.names[name])) {
      counts[i.status] = (counts[i.status] || 0) + 1; instances += 1;
    }
    const parts = Object.entries(counts).sort().map(([s, n]) => n + " " + s);
    summary.textContent = all.length + (all.length === 1 ? " name" : " names") + " · " + instances + " instances ("
      + (parts.join(", ") || "none") + ")" + (shown.length !== all.length ? " · " + shown.length + " shown" : "")
      + (state.ns ? " · name server " + state.ns : "") + (state.live ? "" : " · no change log: refreshed every 5 s");
    summary.setAttribute("data-count", String(all.length));
    summary.setAttribute("data-shown", String(shown.length));
    body.replaceChildren(...shown.slice(0, MAX_ROWS).map((name) => row(name, state.names[name])));
    more.hidden = shown.length <= MAX_ROWS;
    more.textContent = (shown.length - MAX_ROWS) + " more names: narrow the filter to see them";
    state.flash = null;
  }

  return { root, render, title: "Registry" };
}

// -- a service's page -----------------------------------------------------------------------------

function serviceView(name) {
  const root = el("section", { id: "service", "data-name": name }, el("h1", { text: name }),
                  el("p", { class: "muted", text: "Loading…" }));
  let info = null;

  async function fetchInfo() {
    try {
      const answer = await api("/api/names/" + encodeURIComponent(name).replace(/%2F/g, "/"));
      answer.missing = false;
      return answer;
    } catch (error) {
      return { missing: true, error };
    }
  }

  async function load() {
    info = await fetchInfo();
    render();
  }

  async function reloadInstances() {
    const fresh = await fetchInfo();
    const table = document.getElementById("instances");
    if (!info || info.missing || fresh.missing || !table || JSON.stringify(fresh.description) !== JSON.stringify(info.description)) {
      info = fresh;
      render();  // the service itself changed: everything is drawn again
      return;
    }
    info = fresh;
    table.replaceWith(instancesTable());
  }

  function instancesTable() {
    return el("table", { id: "instances" }, el("tbody", {},
      instancesOf(info).map((i) => el("tr", { "data-uri": i.uri },
        el("td", {}, el("span", { class: statusClass(i.status), text: i.status })),
        el("td", { class: "seen muted", "data-seen": i.last_seen || 0, text: ago(i.last_seen) }),
        el("td", { class: "uri mono", text: i.uri }),
        el("td", { class: "muted", text: i.class || "" })))));
  }

  function callForm(method, spec) {
    const input = el("input", { name: "args", class: "mono", "aria-label": "arguments of " + method,
                                placeholder: "ARG KEY=VALUE … (Python literals, as lonja call)" });
    const button = el("button", { type: "submit", text: spec.oneway ? "Send" : "Call" });
    const output = el("pre", { class: "result", hidden: true, "aria-live": "polite" });
    const form = el("form", { class: "call" }, input, button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      output.hidden = false;
      output.className = "result";
      output.textContent = "calling…";
      try {
        await callMethod(name, method, input.value, output);
      } finally {
        button.disabled = false;
      }
    });
    return [form, output];
  }

  function render() {
    root.replaceChildren(el("h1", { text: name }));
    if (!info) return;
    if (info.missing) {
      root.append(el("p", { class: "result error", id: "service-error", text: info.error.type + ": " + info.error.message }));
      return;
    }
    const d = info.description;
    if (d && d.class) root.append(el("p", {}, el("code", { text: d.class })));
    if (d && d.doc) root.append(el("p", { class: "doc", id: "class-doc", text: d.doc }));
    if (info.metadata.length) root.append(el("p", {}, info.metadata.map((tag) => el("span", { class: "tag", text: tag }))));
    root.append(el("h2", { text: "Instances" }), instancesTable());
    if (!d) {
      const e = info.description_error || {};
      root.append(el("p", { class: "result error", id: "describe-error",
                            text: "Cannot describe it: " + e.type + ": " + e.message }));
      return;
    }
    if (!d.class) root.append(el("p", { class: "muted", text: "Not a lonja service: names and flags only." }));
    root.append(el("h2", { text: "Methods" }));
    for (const [method, spec] of Object.entries(d.methods)) {
      const flags = ["oneway", "idempotent", "generator", "async"].filter((f) => spec[f]);
      const lines = (spec.doc || "").split("\n");
      root.append(el("div", { class: "method", "data-method": method },
        el("div", { class: "sig mono" }, method + spec.signature, flags.map((f) => el("span", { class: "flag", text: f }))),
        lines[0] ? el("div", { class: "first-doc", text: lines[0] }) : null,
        lines.length > 1 ? el("details", {}, el("summary", { text: "more" }), el("p", { class: "doc", text: spec.doc })) : null,
        callForm(method, spec)));
    }
    const attrs = Object.entries(d.attributes);
    if (attrs.length) {
      root.append(el("h2", { text: "Attributes" }), el("ul", { class: "attrs" }, attrs.map(([attr, spec]) =>
        el("li", { "data-attribute": attr }, el("code", { text: attr }),
           spec.writable === true ? el("span", { class: "flag", text: "read/write" }) : null,
           spec.writable === false ? el("span", { class: "flag", text: "read-only" }) : null,
           spec.doc ? el("div", { class: "muted", text: spec.doc }) : null))));
    }
  }

  function onChange(change) {
    if (change.name === name) reloadInstances();
  }

  load();
  return { root, render: () => {}, onChange, title: name };
}

function errorText(error) {
  let text = error.type + ": " + error.message;
  if (error.remote_type) {
    const at = error.location || {};
    text = "remote " + error.remote_type + ": " + (error.remote_message || "");
    if (at.file) text += "\n  at " + at.file + ":" + at.line + " in " + at.function;
    if (at.uri) text += "\n  on " + at.uri;
  }
  return text;
}

async function callMethod(name, method, text, output) {
  let response;
  try {
    response = await fetch("/api/call/" + encodeURIComponent(name + "." + method).replace(/%2F/g, "/"), {
      method: "POST", cache: "no-store", body: JSON.stringify({ text }),
      headers: headers({ "Content-Type": "application/json", "Accept": "application/json, application/x-ndjson" }),
    });
  } catch (e) {
    output.className = "result error";
    output.textContent = "the web console does not answer";
    return;
  }
  const type = response.headers.get("content-type") || "";
  if (type.startsWith("application/x-ndjson")) {
    output.textContent = "";
    await readParts(response, "\n", (text) => {
      const line = JSON.parse(text);
      if ("item" in line) output.append(el("div", { class: "item", text: line.repr }));
      else if (line.error) {
        output.append(el("div", { class: "item error", text: errorText(line.error) }));
        output.className = "result error";
      } else if (line.end) output.append(el("div", { class: "muted end", text: "(" + line.count + " items)" }));
    });
    return;
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.ok && body) {
    output.className = "result ok";
    output.textContent = body.oneway ? "sent (oneway: no answer comes back)" : body.repr;
  } else {
    output.className = "result error";
    const error = (body && body.error) || { type: "HTTPError", message: response.statusText };
    output.textContent = errorText(error);
    output.setAttribute("data-status", String(response.status));
    if (error.status === 401) document.getElementById("token").focus();
  }
}

// -- the changes page -----------------------------------------------------------------------------

function changesView() {
  const body = el("tbody", { id: "changes" });
  const root = el("section", {}, el("h1", { text: "Recent changes" }),
    el("p", { class: "muted", text: "Added, removed and status-changed names, newest first; new ones appear as they happen." }),
    el("table", {}, el("thead", {}, el("tr", {}, ["Time", "Change", "Name", "Status", "URI"].map((h) => el("th", { text: h })))),
       body));
  let events = [];

  function line(change) {
    return el("tr", { "data-seq": change.seq, "data-name": change.name },
      el("td", { class: "mono", text: new Date(change.time * 1000).toLocaleTimeString() }),
      el("td", { text: change.kind }),
      el("td", { class: "name" }, el("a", { href: serviceHref(change.name), text: change.name })),
      el("td", {}, change.kind === "removed" ? "" : el("span", { class: statusClass(change.status), text: change.status })),
      el("td", { class: "uri mono", text: change.uri }));
  }

  function render() {
    const rows = events.slice(-500).reverse().map(line);
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No changes yet." }))]));
  }

  api("/api/changes?limit=200").then((answer) => {
    const seen = new Set(events.map((e) => e.seq));
    events = answer.events.filter((e) => !seen.has(e.seq)).concat(events).sort((a, b) => a.seq - b.seq);
    render();
  }).catch(() => render());

  return { root, render, onChange: (change) => { events.push(change); queueRender(); }, title: "Changes" };
}

// -- routing, token, timers -----------------------------------------------------------------------

function route() {
  const hash = location.hash || "#/";
  let view;
  if (hash.startsWith("#/service/")) view = serviceView(decodeURIComponent(hash.slice("#/service/".length)));
  else if (hash === "#/changes") view = changesView();
  else view = registryView();
  state.view = view;
  document.getElementById("view").replaceChildren(view.root);
  document.title = view.title + " · lonja";
  document.getElementById("nav-registry").className = view.title === "Registry" ? "current" : "";
  document.getElementById("nav-changes").className = view.title === "Changes" ? "current" : "";
  view.render();
}

function setIdentity(identity, problem) {
  const label = document.getElementById("identity");
  document.getElementById("token-forget").hidden = !token();
  if (problem) { label.textContent = problem; label.className = "bad"; return; }
  if (!identity) { label.textContent = ""; return; }
  label.className = "muted";
  label.textContent = identity.role === "open" ? (token() ? "token kept (access control is off)" : "access control is off")
    : identity.who === "anonymous" ? "anonymous: " + identity.role : "as " + identity.who + " (" + identity.role + ")";
}

async function checkIdentity() {
  try { setIdentity(await api("/api/whoami")); } catch (error) { setIdentity(null, error.message); }
}

function setup() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    input.value = "";
    input.placeholder = token() ? "token set" : "token (for calls)";
    checkIdentity(); follow(); scheduleRefresh(0);
    if (state.view && state.view.onChange) route();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    input.placeholder = "token (for calls)";
    checkIdentity(); follow(); scheduleRefresh(0);
  });
  input.placeholder = token() ? "token set" : "token (for calls)";
  window.addEventListener("hashchange", route);
  setInterval(() => {
    for (const node of document.querySelectorAll("[data-seen]")) node.textContent = ago(Number(node.getAttribute("data-seen")));
  }, 5000);
  route();
  checkIdentity();
  refresh();
  follow();
}

setup();
