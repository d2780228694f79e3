// The rqlite console: a SQL editor with results, a schema browser and a
// live cluster view, all through the node's own HTTP API. No framework:
// the page is served from the binary and talks to ../db/*, ../nodes and
// ../status with the browser's credentials (Basic auth prompts come from
// the node's WWW-Authenticate when -auth is on).
"use strict";

const $ = (id) => document.getElementById(id);
const api = (path) => "../" + path;
const HISTORY_KEY = "rqlite-console-history";
const HISTORY_MAX = 50;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function call(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(api(path), opts);
  const text = await r.text();
  if (!r.ok) throw new Error(r.status + " " + r.statusText + (text ? ": " + text.trim() : ""));
  return text ? JSON.parse(text) : {};
}

// Split SQL text into statements at top-level semicolons: quotes, comments
// and CREATE TRIGGER ... END bodies keep theirs.
function splitSQL(text) {
  const out = [];
  let cur = "", i = 0, inTrigger = false;
  const flush = () => { const s = cur.trim(); if (s) out.push(s); cur = ""; inTrigger = false; };
  while (i < text.length) {
    const c = text[i];
    if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      let j = i + 1;
      while (j < text.length && !(text[j] === close && text[j + 1] !== close)) j += text[j] === close ? 2 : 1;
      cur += text.slice(i, j + 1); i = j + 1; continue;
    }
    if (c === "-" && text[i + 1] === "-") {
      const j = text.indexOf("\n", i); const end = j < 0 ? text.length : j;
      cur += text.slice(i, end); i = end; continue;
    }
    if (c === "/" && text[i + 1] === "*") {
      const j = text.indexOf("*/", i + 2); const end = j < 0 ? text.length : j + 2;
      cur += text.slice(i, end); i = end; continue;
    }
    if (c === ";") {
      if (/^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b/i.test(cur)) inTrigger = true;
      if (inTrigger && !/\bEND\s*$/i.test(cur)) { cur += c; i++; continue; }
      flush(); i++; continue;
    }
    cur += c; i++;
  }
  flush();
  return out;
}

const READ_RE = /^\s*(SELECT|WITH|EXPLAIN|PRAGMA\s+\w+\s*(\(|$))|^\s*VALUES\b/i;

// ---- history -------------------------------------------------------------

function history() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY)) || []; } catch (e) { return []; }
}

function remember(sql) {
  const h = history().filter((x) => x !== sql);
  h.unshift(sql);
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX))); } catch (e) { /* full */ }
  showHistory();
}

function showHistory() {
  const ol = $("history");
  ol.replaceChildren(...history().map((sql) => {
    const li = el("li", { title: sql }, sql);
    li.addEventListener("click", () => { $("sql").value = sql; $("sql").focus(); });
    return li;
  }));
}

// ---- running SQL ---------------------------------------------------------

function cell(v) {
  if (v === null) return el("td", { class: "null" }, "NULL");
  if (typeof v === "object") return el("td", {}, JSON.stringify(v));
  return el("td", {}, String(v));
}

function renderResult(stmt, r) {
  const box = el("div", { class: "result" }, el("div", { class: "stmt" }, stmt));
  if (r.error !== undefined) {
    box.append(el("div", { class: "error" }, "Error: " + r.error));
  } else if (r.columns !== undefined) {
    const types = r.types || [];
    const head = el("tr", {}, ...r.columns.map((c, i) => el("th", {}, c, el("span", { class: "type" }, types[i] || ""))));
    const rows = (r.values || []).map((row) => el("tr", {}, ...row.map(cell)));
    box.append(el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...rows)));
    box.append(el("div", { class: "muted" }, (r.values || []).length + " row(s)" + timeOf(r)));
  } else {
    const n = r.rows_affected || 0;
    box.append(el("div", {}, n + " row" + (n === 1 ? "" : "s") + " affected" +
      (r.last_insert_id ? ", last insert ID " + r.last_insert_id : "") + timeOf(r)));
  }
  return box;
}

function timeOf(r) {
  return r.time !== undefined ? " in " + (r.time * 1000).toFixed(3) + " ms" : "";
}

async function run() {
  const text = $("sql").value;
  const stmts = splitSQL(text);
  const out = $("results");
  if (!stmts.length) return;
  remember(text.trim());
  const mode = $("mode").value;
  const level = $("level").value;
  let path;
  if (mode === "query" || (mode === "auto" && stmts.every((s) => READ_RE.test(s)))) {
    path = "db/query?timings&level=" + level;
  } else if (mode === "execute") {
    path = "db/execute?timings";
  } else {
    path = "db/request?timings&level=" + level;
  }
  if ($("tx").checked) path += "&transaction";
  $("timing").textContent = "running...";
  const t0 = performance.now();
  try {
    const res = await call("POST", path, stmts);
    const ms = performance.now() - t0;
    out.replaceChildren(...(res.results || []).map((r, i) => renderResult(stmts[i] || "", r)));
    if (res.error) out.prepend(el("div", { class: "result error" }, "Error: " + res.error));
    $("timing").textContent = "server " + ((res.time || 0) * 1000).toFixed(3) + " ms, round trip " + ms.toFixed(1) + " ms";
    if (stmts.some((s) => !READ_RE.test(s))) loadSchema();
  } catch (e) {
    out.replaceChildren(el("div", { class: "result error" }, e.message));
    $("timing").textContent = "";
  }
}

// ---- schema --------------------------------------------------------------

async function loadSchema() {
  const list = $("schema-list");
  try {
    const res = await call("POST", "db/query?level=weak", [
      "SELECT m.name, p.name, p.type, p.pk, p.\"notnull\" FROM sqlite_master AS m, pragma_table_info(m.name) AS p " +
        "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
      "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY tbl_name, name",
      "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name",
    ]);
    const [cols, idx, views] = res.results;
    for (const r of res.results) if (r.error) throw new Error(r.error);
    const tables = new Map();
    for (const [t, c, type, pk, nn] of cols.values || []) {
      if (!tables.has(t)) tables.set(t, []);
      tables.get(t).push(c + (type ? " " + type : "") + (pk ? " PK" : "") + (nn ? " NOT NULL" : ""));
    }
    const indexes = new Map();
    for (const [name, t] of idx.values || []) {
      if (!indexes.has(t)) indexes.set(t, []);
      indexes.get(t).push(name);
    }
    const items = [];
    for (const [t, cs] of tables) {
      const sub = el("ul", { class: "cols" }, ...cs.map((c) => el("li", {}, c)),
        ...(indexes.get(t) || []).map((i) => el("li", { class: "idx" }, "index " + i)));
      const li = el("li", { class: "table", "data-table": t }, el("strong", {}, t), sub);
      li.querySelector("strong").addEventListener("click", () => {
        $("sql").value = "SELECT * FROM \"" + t.replace(/"/g, '""') + "\" LIMIT 100";
        run();
      });
      items.push(li);
    }
    for (const [v] of views.values || []) items.push(el("li", { class: "view-item" }, "view " + v));
    list.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no tables")]));
  } catch (e) {
    list.replaceChildren(el("li", { class: "error" }, e.message));
  }
}

// ---- cluster -------------------------------------------------------------

let clusterTimer = null;

async function loadCluster() {
  try {
    const [nodes, status] = await Promise.all([
      call("GET", "nodes?nonvoters&ver=2&applied&timeout=2s"),
      call("GET", "status"),
    ]);
    const list = nodes.nodes || [];
    const leaderIdx = Math.max(0, ...list.filter((n) => n.leader).map((n) => n.applied_index || 0));
    $("nodes").tBodies[0].replaceChildren(...list.map((n) => {
      const lag = n.applied_index !== undefined && leaderIdx ? leaderIdx - n.applied_index : "";
      const tr = el("tr", { class: (n.reachable ? "" : "down ") + (n.leader ? "leader" : ""), "data-id": n.id },
        el("td", {}, n.id), el("td", {}, n.api_addr || ""), el("td", {}, n.addr),
        el("td", {}, n.leader ? "leader" : (n.voter ? "follower" : "read-only")),
        el("td", {}, n.voter ? "yes" : "no"), el("td", {}, n.reachable ? "yes" : "no" + (n.error ? " (" + n.error + ")" : "")),
        el("td", {}, n.applied_index !== undefined ? n.applied_index : ""), el("td", {}, lag),
        el("td", {}, n.time_s || ""));
      return tr;
    }));
    const st = status.store || {}, raft = st.raft || {};
    const rows = [["node ID", st.node_id], ["state", raft.state], ["term", raft.term],
      ["leader", (st.leader || {}).node_id], ["commit index", raft.commit_index],
      ["applied index", raft.applied_index], ["database size", (st.sqlite3 || {}).size],
      ["version", (status.build || {}).version]];
    $("self").tBodies[0].replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v === undefined ? "" : v))));
    $("node-info").textContent = "node " + st.node_id + " · " + (raft.state || "") + " · " + ((status.build || {}).version || "");
    $("cluster-updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("cluster-updated").textContent = e.message;
  }
}

function show(view) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === view);
  for (const v of document.querySelectorAll(".view")) v.classList.toggle("hidden", v.id !== view);
  clearInterval(clusterTimer);
  if (view === "view-cluster") {
    loadCluster();
    clusterTimer = setInterval(loadCluster, 2000);
  }
}

// ---- start ---------------------------------------------------------------

$("run").addEventListener("click", run);
$("sql").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
});
$("schema-refresh").addEventListener("click", loadSchema);
for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => show(t.dataset.view));
showHistory();
loadSchema();
loadCluster();
