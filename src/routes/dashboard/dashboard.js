// The cache dashboard's script. It reads the admin JSON routes every REFRESH_MS, keeps a few
// minutes of samples for the chart, and drives the key browser and the purge form.
// Everything a client can influence (namespaces, keys, tags, bodies) is written with
// textContent, never as HTML. The admin token lives in sessionStorage only.
"use strict";

const REFRESH_MS = 2000;
const HISTORY_SAMPLES = 150; // 5 minutes at REFRESH_MS
const NAMESPACES_PER_PAGE = 25;
const KEYS_PER_PAGE = 50;
const TOKEN_KEY = "wrc-admin-token";

const $ = (id) => document.getElementById(id);
const state = {
  previous: null, // the last stats answer, with the time it arrived
  history: [], // {at, hitRate, lookupsPerSec}
  namespaceRates: {}, // lookups per second, per namespace
  nsPage: 0,
  keysCursor: 0,
  keysQuery: null,
  pendingAction: null,
};

class AuthError extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// Calls an admin route; throws AuthError on 401/403 and Error with the API's message otherwise.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    answer = null;
  }
  const message = answer && answer.error && answer.error.message;
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(message || "not authorised (" + response.status + ")");
  }
  if (!response.ok) throw new Error(message || method + " " + path + ": " + response.status);
  return answer;
}

function showAuthError(err) {
  $("data").classList.add("hidden");
  const box = $("auth-error");
  box.textContent = "Admin access refused: " + err.message +
    (token() ? " Check the token." : " Enter the admin token above.");
  box.classList.remove("hidden");
  state.previous = null;
}

function report(err) {
  if (err instanceof AuthError) {
    showAuthError(err);
    return;
  }
  const box = $("load-error");
  box.textContent = err.message;
  box.classList.remove("hidden");
}

// ---- formatting ----

function number(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "–";
}
function percent(rate) {
  return typeof rate === "number" && isFinite(rate) ? (rate * 100).toFixed(1) + " %" : "–";
}
function bytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function ttl(ms) {
  if (ms === null || ms === undefined) return "never expires";
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}
function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

// ---- stats ----

function lookups(c) {
  return (c.hits || 0) + (c.misses || 0);
}

async function refresh() {
  try {
    const stats = await api("GET", "/cache/stats");
    const now = Date.now();
    $("auth-error").classList.add("hidden");
    $("load-error").classList.add("hidden");
    $("data").classList.remove("hidden");
    sample(stats, now);
    renderHealth(stats);
    renderTotals(stats);
    renderNamespaces(stats);
    drawChart();
    state.previous = { stats, at: now };
    setText("updated", "updated " + new Date(now).toLocaleTimeString());
  } catch (err) {
    report(err);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

// Rates come from the difference between two answers; a reset (counters going down) starts over.
function sample(stats, now) {
  const prev = state.previous;
  state.namespaceRates = {};
  if (!prev || lookups(stats) < lookups(prev.stats)) return;
  const seconds = Math.max((now - prev.at) / 1000, 0.001);
  const hits = stats.hits - prev.stats.hits;
  const total = lookups(stats) - lookups(prev.stats);
  state.history.push({
    at: now,
    hitRate: total > 0 ? hits / total : null,
    lookupsPerSec: total / seconds,
  });
  while (state.history.length > HISTORY_SAMPLES) state.history.shift();
  for (const [name, counters] of Object.entries(stats.namespaces || {})) {
    const before = (prev.stats.namespaces || {})[name];
    const delta = lookups(counters) - (before ? lookups(before) : 0);
    state.namespaceRates[name] = Math.max(delta, 0) / seconds;
  }
}

function renderHealth(stats) {
  const backend = stats.backend || {};
  setText("backend-health", backend.healthy ? "healthy" : "down", backend.healthy ? "big ok" : "big bad");
  setText("backend-kind", backend.kind || "–");
  setText("backend-latency", typeof backend.latency_ms === "number" ? backend.latency_ms.toFixed(2) + " ms" : "–");
  setText("backend-error", backend.error || "none");
  const nodes = $("nodes");
  nodes.textContent = "";
  for (const node of backend.nodes || []) {
    const line = document.createElement("div");
    const latency = typeof node.latency_ms === "number" ? " (" + node.latency_ms.toFixed(2) + " ms)" : "";
    line.textContent = node.address + ": " + (node.healthy ? "up" + latency : "down");
    nodes.appendChild(line);
  }
  const circuit = backend.circuit;
  if (circuit) {
    const cls = circuit.state === "closed" ? "big ok" : circuit.state === "open" ? "big bad" : "big warn";
    setText("breaker-state", circuit.state.replace("_", " "), cls);
    setText("breaker-opened", number(circuit.opened_total) + " times");
  } else {
    setText("breaker-state", "none (" + (backend.kind || "no") + " backend)", "big muted");
    setText("breaker-opened", "–");
  }
  // Under the backend (older services report none): shown when present.
  const pending = backend.pending_busts ?? stats.pending_busts;
  const pendingCount = typeof pending === "number" ? pending
    : pending && typeof pending === "object" ? pending.count : undefined;
  if (typeof pendingCount === "number") {
    setText("pending-busts", number(pendingCount), pendingCount > 0 ? "big warn" : "big ok");
  } else {
    setText("pending-busts", "not reported", "big muted");
  }
  const l1 = stats.l1;
  if (l1) {
    setText("l1-state", l1.live ? "live" : "not live", l1.live ? "big ok" : "big bad");
    setText("l1-entries", number(l1.entries));
    setText("l1-bytes", bytes(l1.bytes));
  } else {
    setText("l1-state", "off", "big muted");
    setText("l1-entries", "–");
    setText("l1-bytes", "–");
  }
}

function renderTotals(stats) {
  const last = state.history[state.history.length - 1];
  setText("req-rate", last ? last.lookupsPerSec.toFixed(1) : "–");
  setText("total-hit-rate", percent(stats.hit_rate));
  setText("total-hits", number(stats.hits));
  setText("total-misses", number(stats.misses));
  setText("total-stale", number(stats.stale_serves));
  setText("total-errors", number(stats.errors));
}

function renderNamespaces(stats) {
  const filter = $("ns-filter").value.trim().toLowerCase();
  const all = Object.entries(stats.namespaces || {});
  const list = $("ns-list");
  if (list.childElementCount !== all.length) {
    list.textContent = "";
    for (const [name] of all) {
      const option = document.createElement("option");
      option.value = name;
      list.appendChild(option);
    }
  }
  const shown = all
    .filter(([name]) => name.toLowerCase().includes(filter))
    .sort((a, b) => lookups(b[1]) - lookups(a[1]) || a[0].localeCompare(b[0]));
  const pages = Math.max(1, Math.ceil(shown.length / NAMESPACES_PER_PAGE));
  state.nsPage = Math.min(state.nsPage, pages - 1);
  const from = state.nsPage * NAMESPACES_PER_PAGE;
  const body = $("ns-table").tBodies[0];
  body.textContent = "";
  for (const [name, c] of shown.slice(from, from + NAMESPACES_PER_PAGE)) {
    const row = document.createElement("tr");
    row.className = "pick";
    row.dataset.namespace = name;
    row.title = "browse the keys of " + name;
    cell(row, name);
    cell(row, number(c.hits), "num");
    cell(row, number(c.misses), "num");
    cell(row, number(c.stale_serves), "num");
    cell(row, lookups(c) ? percent(c.hit_rate) : "–", "num");
    const rate = state.namespaceRates[name];
    cell(row, typeof rate === "number" ? rate.toFixed(1) : "–", "num");
    row.addEventListener("click", () => {
      $("keys-namespace").value = name;
      $("keys-prefix").value = "";
      searchKeys();
    });
    body.appendChild(row);
  }
  setText("ns-count", shown.length + " of " + all.length);
  setText("ns-page", "page " + (state.nsPage + 1) + " of " + pages);
  $("ns-prev").disabled = state.nsPage === 0;
  $("ns-next").disabled = state.nsPage >= pages - 1;
}

// ---- chart ----

const SVG = "http://www.w3.org/2000/svg";
function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// The x axis spans the samples held (at least MIN_SPAN_MS, at most HISTORY_SAMPLES of them);
// the viewBox follows the element's width so text is never stretched.
const MIN_SPAN_MS = 20000;
function drawChart() {
  const chart = $("chart");
  chart.textContent = "";
  const width = Math.max(chart.clientWidth || 640, 320);
  chart.setAttribute("viewBox", "0 0 " + width + " 170");
  const [left, right, top, bottom] = [36, width - 44, 8, 150];
  const samples = state.history;
  const maxRate = Math.max(1, ...samples.map((s) => s.lookupsPerSec));
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * (bottom - top);
    chart.appendChild(svg("line", { x1: left, x2: right, y1: y, y2: y, stroke: "#e4e7ec" }));
    chart.appendChild(svg("text", { x: 2, y: y + 3 }, Math.round(fraction * 100) + "%"));
    chart.appendChild(svg("text", { x: right + 4, y: y + 3 }, (fraction * maxRate).toFixed(fraction ? 1 : 0) + "/s"));
  }
  const now = samples.length ? samples[samples.length - 1].at : Date.now();
  const span = Math.max(MIN_SPAN_MS, samples.length ? now - samples[0].at : 0);
  const seconds = Math.round(span / 1000);
  const ago = seconds >= 120 ? "-" + Math.round(seconds / 60) + " min" : "-" + seconds + " s";
  chart.appendChild(svg("text", { x: left, y: 166 }, ago));
  chart.appendChild(svg("text", { x: right - 20, y: 166 }, "now"));
  setText("chart-scale", samples.length ? samples.length + " samples, every " + REFRESH_MS / 1000 + " s" : "waiting for the second sample");
  if (!samples.length) return;
  const x = (at) => right - ((now - at) / span) * (right - left);
  const line = (value, colour) => {
    const points = samples
      .filter((s) => value(s) !== null)
      .map((s) => x(s.at).toFixed(1) + "," + (bottom - value(s) * (bottom - top)).toFixed(1));
    if (points.length) {
      chart.appendChild(svg("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
    }
  };
  line((s) => s.hitRate, "#2563eb");
  line((s) => s.lookupsPerSec / maxRate, "#9333ea");
}

// ---- keys ----

function searchKeys() {
  state.keysQuery = {
    namespace: $("keys-namespace").value.trim(),
    prefix: $("keys-prefix").value,
  };
  state.keysCursor = 0;
  loadKeys();
}

async function loadKeys() {
  const query = state.keysQuery || { namespace: "", prefix: "" };
  const params = new URLSearchParams({ limit: String(KEYS_PER_PAGE) });
  if (query.namespace) params.set("namespace", query.namespace);
  if (query.namespace && query.prefix) params.set("prefix", query.prefix);
  if (state.keysCursor) params.set("cursor", String(state.keysCursor));
  setText("keys-status", "loading…");
  try {
    const page = await api("GET", "/cache/keys?" + params.toString());
    const body = $("keys-table").tBodies[0];
    body.textContent = "";
    for (const entry of page.keys) {
      const row = document.createElement("tr");
      row.className = "pick";
      cell(row, entry.namespace || "");
      cell(row, entry.entry_key || entry.key, "key");
      cell(row, ttl(entry.ttl_ms), "num");
      cell(row, bytes(entry.size_bytes), "num");
      row.addEventListener("click", () => showEntry(entry.namespace, entry.entry_key));
      body.appendChild(row);
    }
    state.keysCursor = page.next_cursor;
    $("keys-next").disabled = page.next_cursor === 0;
    const where = query.namespace ? " in " + query.namespace : "";
    setText("keys-status", page.keys.length + " keys" + where + (page.next_cursor ? ", more on the next page" : ", end of the listing"));
  } catch (err) {
    setText("keys-status", err.message);
    report(err);
  }
}

async function showEntry(namespace, key) {
  try {
    const entry = await api("GET", "/cache/entries/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(key));
    $("entry-detail").classList.remove("hidden");
    $("entry-detail").dataset.namespace = namespace;
    $("entry-detail").dataset.key = key;
    setText("entry-key", namespace + " / " + key);
    setText("entry-validity", entry.validity || (entry.live === false ? "dead" : "valid"));
    setText("entry-ttl", ttl(entry.ttl_ms));
    setText("entry-size", bytes(entry.stored_bytes));
    setText("entry-encoding", entry.encoding);
    setText("entry-tags", entry.tags.length ? entry.tags.join(", ") : "none");
    setText("entry-meta", JSON.stringify(entry.meta, null, 2));
    setText("entry-body", entry.body !== null ? entry.body : entry.decode_error || "(not text)");
  } catch (err) {
    report(err);
  }
}

// ---- purge and clear: a dry run first, then an explicit confirmation ----

function purgeRequest(dryRun) {
  const kind = $("purge-kind").value;
  const namespace = $("purge-namespace").value.trim();
  const target = $("purge-target").value.trim();
  const soft = $("purge-soft").checked;
  if (!namespace) throw new Error("name a namespace");
  if ((kind === "key" || kind === "tag") && !target) throw new Error("name the " + kind);
  if (kind === "key") return { namespace, keys: [target], soft, dry_run: dryRun };
  if (kind === "tag") return { namespace, tags: [target], soft, dry_run: dryRun };
  return { namespaces: [namespace], soft: kind === "namespace" && soft, dry_run: dryRun };
}

function affected(answer) {
  let n = 0;
  for (const ns of answer.namespaces || []) n += ns.entries || 0;
  for (const tag of answer.tags || []) n += tag.entries || 0;
  for (const key of answer.keys || []) n += key.existed ? 1 : 0;
  return n;
}

function entries(n) {
  return n === 1 ? "1 live entry" : n + " live entries";
}

async function dryRun() {
  const result = $("purge-result");
  $("purge-confirm").classList.add("hidden");
  state.pendingAction = null;
  try {
    const request = purgeRequest(true);
    const kind = $("purge-kind").value;
    const answer = await api("POST", "/cache/purge", request);
    const count = affected(answer);
    const verb = kind === "clear" ? "Delete every key of namespace " + request.namespaces[0]
      : (request.soft ? "Soft-purge " : "Purge ") + describeTarget(kind, request);
    setText("purge-question", verb + ": dry run found " + entries(count) + ". Go ahead?");
    $("purge-confirm").classList.remove("hidden");
    result.textContent = "dry run: " + entries(count) + ", nothing changed yet";
    state.pendingAction = { kind, request: purgeRequest(false) };
  } catch (err) {
    result.textContent = err.message;
    report(err);
  }
}

function describeTarget(kind, request) {
  if (kind === "key") return "key " + request.keys[0] + " of " + request.namespace;
  if (kind === "tag") return "tag " + request.tags[0] + " of " + request.namespace;
  return "namespace " + request.namespaces[0];
}

async function confirmAction() {
  const action = state.pendingAction;
  if (!action) return;
  state.pendingAction = null;
  $("purge-confirm").classList.add("hidden");
  const result = $("purge-result");
  try {
    if (action.kind === "clear") {
      const ns = action.request.namespaces[0];
      const answer = await api("POST", "/cache/clear/" + encodeURIComponent(ns));
      result.textContent = "cleared namespace " + ns + ": " + (answer.deleted === 1 ? "1 key" : answer.deleted + " keys") + " deleted";
    } else {
      const answer = await api("POST", "/cache/purge", action.request);
      result.textContent = "purged: " + describeTarget(action.kind, action.request) +
        (answer.soft ? " (soft)" : "");
    }
    if (state.keysQuery) loadKeys();
  } catch (err) {
    result.textContent = err.message;
    report(err);
  }
}

// ---- wiring ----

function wire() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    state.previous = null;
    state.history = [];
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.previous = null;
    state.history = [];
  });
  $("ns-filter").addEventListener("input", () => {
    state.nsPage = 0;
    if (state.previous) renderNamespaces(state.previous.stats);
  });
  $("ns-prev").addEventListener("click", () => {
    state.nsPage = Math.max(0, state.nsPage - 1);
    if (state.previous) renderNamespaces(state.previous.stats);
  });
  $("ns-next").addEventListener("click", () => {
    state.nsPage += 1;
    if (state.previous) renderNamespaces(state.previous.stats);
  });
  $("keys-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchKeys();
  });
  $("keys-first").addEventListener("click", () => {
    state.keysCursor = 0;
    loadKeys();
  });
  $("keys-next").addEventListener("click", loadKeys);
  $("purge-dry-run").addEventListener("click", dryRun);
  $("purge-confirm-button").addEventListener("click", confirmAction);
  $("purge-cancel").addEventListener("click", () => {
    state.pendingAction = null;
    $("purge-confirm").classList.add("hidden");
    setText("purge-result", "cancelled, nothing changed");
  });
  $("entry-purge").addEventListener("click", () => {
    const detail = $("entry-detail");
    $("purge-kind").value = "key";
    $("purge-namespace").value = detail.dataset.namespace;
    $("purge-target").value = detail.dataset.key;
    dryRun();
  });
}

wire();
refresh();
