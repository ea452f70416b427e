// Touchmark's dashboard. No framework, no CDN: this file, the page and the stylesheet are all
// it needs, embedded in the server. It logs in with an API token (the server answers with an
// HttpOnly session cookie and a CSRF token), then reads the /v1 API with that cookie and
// follows the server's live snapshots over server-sent events.
"use strict";

const state = { csrf: null, role: null, order: null, events: null, openAlerts: -1, reportsAt: 0 };
const REPORTS_EVERY_MS = 5000;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  return node;
}

async function api(path, options = {}) {
  const headers = { accept: "application/json" };
  if (options.method && options.method !== "GET") headers["x-csrf-token"] = state.csrf;
  if (options.body) headers["content-type"] = "application/json";
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(body && body.message ? `${body.code}: ${body.message}` : `HTTP ${response.status}`);
  return body;
}

const percent = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
const fixed = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));

// ---- Session ----------------------------------------------------------------------------------

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("unit-search").addEventListener("submit", searchUnit);
  $("alerts-all").addEventListener("change", loadAlerts);
  $("vulns-due").addEventListener("change", loadReports);
  try {
    enter(await api("/ui/session"));
  } catch {
    $("login").hidden = false;
  }
}

async function login(e) {
  e.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await api("/ui/login", { method: "POST", body: JSON.stringify({ token: $("token").value }) });
    $("token").value = "";
    enter(session);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
}

async function logout() {
  try { await api("/ui/logout", { method: "POST" }); } catch { /* gone already */ }
  location.reload();
}

function enter(session) {
  state.csrf = session.csrf;
  state.role = session.role;
  $("whoami").textContent = `${session.token_id} (${session.role}${session.role === "admin" ? "" : ", read-only"})`;
  $("logout").hidden = false;
  $("login").hidden = true;
  $("app").hidden = false;
  loadAlerts();
  loadCheckpoint();
  // Reports are for admins alone: an auditor's token does not read them.
  $("vulns").hidden = session.role !== "admin";
  if (session.role === "admin") loadReports();
  follow();
}

// ---- Live ---------------------------------------------------------------------------------------

function follow() {
  if (state.events) state.events.close();
  const source = new EventSource("/ui/events");
  state.events = source;
  source.addEventListener("open", () => { $("live-state").textContent = "live"; });
  source.addEventListener("error", () => { $("live-state").textContent = "reconnecting"; });
  source.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
}

function render(snap) {
  $("live-issued").textContent = snap.units_issued;
  $("log-size").textContent = snap.log_size;
  $("open-alerts").textContent = snap.open_alerts;
  const orders = $("orders").tBodies[0];
  orders.replaceChildren(...snap.orders.map((o) => {
    const gauge = el("progress", { max: Math.max(o.quota, 1), value: o.issued, title: `${o.issued} of ${o.quota}` });
    const row = el("tr", { class: "clickable", "data-order": o.id },
      el("td", {}, o.id), el("td", {}, o.product), el("td", {}, o.factory), el("td", {}, o.state),
      el("td", {}, gauge, " ", o.quota), el("td", { class: "issued" }, o.issued), el("td", {}, o.remaining));
    row.addEventListener("click", () => loadReport(o.id));
    return row;
  }));
  const stations = $("stations").tBodies[0];
  stations.replaceChildren(...snap.stations.map((s) => el("tr", { "data-station": s.id },
    el("td", {}, s.id), el("td", {}, s.attempts_last_hour), el("td", {}, s.passed_last_hour),
    el("td", {}, percent(s.yield_last_hour)))));
  if (snap.open_alerts !== state.openAlerts) {
    state.openAlerts = snap.open_alerts;
    loadAlerts();
  }
  if (state.order) loadReport(state.order, true);
  // New reports and changed deadlines show within a few seconds, without a fetch per snapshot.
  if (state.role === "admin" && Date.now() - state.reportsAt > REPORTS_EVERY_MS) loadReports();
  loadCheckpoint();
}

async function loadCheckpoint() {
  try {
    const response = await fetch("/log/checkpoint");
    $("checkpoint").textContent = response.ok ? await response.text() : "no checkpoint yet";
  } catch { /* offline for a moment */ }
}

// ---- Report -------------------------------------------------------------------------------------

let reportBusy = false;
async function loadReport(order, quiet) {
  if (reportBusy && quiet) return;
  reportBusy = true;
  try {
    state.order = order;
    const r = await api(`/v1/orders/${encodeURIComponent(order)}/report`);
    $("report").hidden = false;
    $("report-order").textContent = r.order;
    const summary = [
      ["Quota", `${r.quota_used} used, ${r.quota_left} left of ${r.quota}`],
      ["Units tested", r.units], ["Attempts", r.attempts],
      ["First-pass yield", percent(r.first_pass_yield)], ["Final yield", percent(r.final_yield)],
      ["Retest rate", percent(r.retest_rate)], ["Failed tests", r.failed_tests],
      ["Refusals", Object.entries(r.refusals).map(([k, v]) => `${k} ${v}`).join(", ") || "none"],
    ];
    $("report-summary").replaceChildren(...summary.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { id: `fpy-${k.replace(/\W/g, "")}` }, v)]));
    $("report-hours").replaceChildren(bars(r.units_per_hour.map((h) => [h.hour.slice(11, 16), h.attempts])));
    $("pareto-steps").replaceChildren(bars(r.failures_by_step.map((p) => [p.name, p.failures]), true));
    $("pareto-measurements").replaceChildren(bars(r.failures_by_measurement.map((p) => [p.name, p.failures]), true));
    $("measurements").replaceChildren(...r.measurements.map(measurement));
  } catch (err) {
    $("report-summary").replaceChildren(el("dd", { class: "error" }, err.message));
  } finally {
    reportBusy = false;
  }
}

function bars(items, bad) {
  const w = 720, h = 160, pad = 24;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img" });
  if (!items.length) { root.append(svg("text", { x: 4, y: 14, text: "nothing yet" })); return root; }
  const max = Math.max(...items.map(([, n]) => n), 1);
  const bw = (w - pad) / items.length;
  items.forEach(([label, n], i) => {
    const bh = ((h - 2 * pad) * n) / max;
    root.append(svg("rect", { class: bad ? "bar-bad" : "bar", x: pad + i * bw + 2, y: h - pad - bh, width: Math.max(bw - 4, 1), height: bh }));
    root.append(svg("text", { x: pad + i * bw + 2, y: h - pad + 12, text: label.length > 18 ? label.slice(0, 17) + "…" : label }));
    root.append(svg("text", { x: pad + i * bw + 2, y: h - pad - bh - 3, text: n }));
  });
  root.append(svg("line", { class: "axis", x1: pad, y1: h - pad, x2: w, y2: h - pad }));
  return root;
}

function measurement(m) {
  const title = el("div", {},
    el("strong", {}, `${m.step}/${m.name}`), ` ${m.unit || ""} · n ${m.count} · mean ${fixed(m.mean, 4)} · σ ${fixed(m.stddev, 4)}`,
    ` · min ${m.min} · max ${m.max} · Cp ${fixed(m.cp)} · Cpk ${fixed(m.cpk)} · Pp ${fixed(m.pp)} · Ppk ${fixed(m.ppk)}`);
  const hist = bars(m.histogram.counts.map((n, i) => [fixed(m.histogram.edges[i], 2), n]));
  return el("div", { class: "measurement", "data-measurement": `${m.step}/${m.name}` },
    el("div", {}, title, el("div", { class: "chart" }, hist)),
    el("div", {}, el("div", {}, "Control chart (last values, limits dashed)"), el("div", { class: "chart" }, control(m))));
}

function control(m) {
  const w = 720, h = 160, pad = 24, v = m.recent;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img" });
  if (!v.length) return root;
  const lo = Math.min(...v, m.low ?? Infinity), hi = Math.max(...v, m.high ?? -Infinity);
  const span = hi - lo || 1;
  const x = (i) => pad + ((w - 2 * pad) * i) / Math.max(v.length - 1, 1);
  const y = (val) => h - pad - ((h - 2 * pad) * (val - lo)) / span;
  for (const limit of [m.low, m.high]) {
    if (limit !== null && limit !== undefined) root.append(svg("line", { class: "limit", x1: pad, x2: w - pad, y1: y(limit), y2: y(limit) }));
  }
  root.append(svg("polyline", { class: "series", points: v.map((val, i) => `${x(i)},${y(val)}`).join(" ") }));
  v.forEach((val, i) => root.append(svg("circle", { class: "point", cx: x(i), cy: y(val), r: 2 })));
  return root;
}

// ---- Alerts -------------------------------------------------------------------------------------

async function loadAlerts() {
  try {
    const alerts = await api(`/v1/alerts${$("alerts-all").checked ? "?state=all" : ""}`);
    $("alerts").tBodies[0].replaceChildren(...alerts.map((a) => {
      const actions = el("td", {});
      if (state.role === "admin" && a.state === "open") {
        const ack = el("button", { class: "ack", type: "button" }, "Acknowledge");
        ack.addEventListener("click", () => act(a.id, "acknowledge"));
        actions.append(ack);
      }
      if (state.role === "admin" && a.state !== "resolved") {
        const resolve = el("button", { class: "resolve", type: "button" }, "Resolve");
        resolve.addEventListener("click", () => act(a.id, "resolve"));
        actions.append(" ", resolve);
      }
      const evidence = Object.entries(a.evidence).map(([k, v]) => `${k}=${v}`).join(" ");
      return el("tr", { class: "alert", "data-alert-id": a.id },
        el("td", {}, a.raised_at), el("td", {}, a.kind), el("td", { class: `state state-${a.state}` }, a.state),
        el("td", {}, a.order || "–"), el("td", {}, a.station || "–"), el("td", { class: "evidence" }, evidence), actions);
    }));
  } catch (err) {
    $("alerts").tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "error" }, err.message)));
  }
}

async function act(id, action) {
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST" });
  } catch (err) {
    alert(err.message);
  }
  loadAlerts();
}

// ---- Vulnerability reports ----------------------------------------------------------------------

// A report's text is the researcher's, sent to a public route: it is only ever set as text.
const DESCRIPTION_SHOWN = 200;

async function loadReports() {
  state.reportsAt = Date.now();
  try {
    const reports = await api(`/v1/vulnerability-reports${$("vulns-due").checked ? "?due=true" : ""}`);
    $("reports").tBodies[0].replaceChildren(...reports.map((r) => {
      const actions = el("td", {});
      if (r.next_states.length) {
        const choice = el("select", { class: "next-state", title: "the states it may move to" },
          ...r.next_states.map((s) => el("option", { value: s }, s)));
        const move = el("button", { class: "move", type: "button" }, "Set");
        move.addEventListener("click", () => moveReport(r.id, choice.value));
        actions.append(choice, " ", move);
      }
      const deadlines = r.deadlines.map((d) => el("div", { class: `deadline due-${d.status}` },
        `${d.deadline.replace("_", " ")}: ${d.status}${d.due_at ? ` (due ${d.due_at})` : ""}`));
      const text = r.description || (r.encrypted ? "(encrypted)" : "");
      const description = el("td", { class: "description", title: text },
        text.length > DESCRIPTION_SHOWN ? `${text.slice(0, DESCRIPTION_SHOWN)}…` : text);
      return el("tr", { class: "report", "data-report-id": r.id },
        el("td", {}, r.id), el("td", {}, r.received_at),
        el("td", {}, [r.product, r.version].filter(Boolean).join(" ") || "–"),
        el("td", { class: `state report-${r.state}` }, r.state),
        el("td", {}, r.class ? r.class.replace("_", " ") : "–"),
        el("td", { class: "deadlines" }, ...deadlines), description, actions);
    }));
  } catch (err) {
    $("reports").tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "error" }, err.message)));
  }
}

async function moveReport(id, to) {
  try {
    await api(`/v1/vulnerability-reports/${encodeURIComponent(id)}/state`,
      { method: "POST", body: JSON.stringify({ state: to }) });
  } catch (err) {
    alert(err.message);
  }
  loadReports();
}

// ---- Units --------------------------------------------------------------------------------------

async function searchUnit(e) {
  e.preventDefault();
  const serial = $("serial").value.trim();
  const out = $("history");
  try {
    const h = await api(`/v1/units/${encodeURIComponent(serial)}/history`);
    const rows = h.entries.map((entry) => {
      let detail = "";
      let result = "";
      if (entry.attempt) {
        result = entry.attempt.verdict;
        detail = entry.attempt.steps.map((s) => `${s.name} ${s.outcome}` +
          (s.measurements.length ? ` (${s.measurements.map((m) => `${m.name}=${m.value ?? m.text}${m.unit ? " " + m.unit : ""}`).join(", ")})` : "")).join("; ");
      } else if (entry.cert_sha256) {
        result = "issued";
        detail = `certificate sha256 ${entry.cert_sha256}`;
      }
      return el("tr", { class: `history-${entry.kind.replace(".", "-")}` },
        el("td", {}, entry.at), el("td", {}, entry.kind), el("td", {}, entry.order), el("td", {}, entry.station || "–"),
        el("td", { class: result === "pass" || result === "issued" ? "pass" : "fail" }, result), el("td", {}, detail));
    });
    out.replaceChildren(
      el("p", { id: "history-summary" }, `${h.serial}: ${h.status.join(", ")} · ${h.test_attempts} attempts, ${h.retests} retests`),
      el("table", {}, el("thead", {}, el("tr", {}, ...["Time", "What", "Order", "Station", "Result", "Detail"].map((t) => el("th", {}, t)))), el("tbody", {}, ...rows)));
  } catch (err) {
    out.replaceChildren(el("p", { class: "error", id: "history-summary" }, err.message));
  }
}

document.addEventListener("DOMContentLoaded", start);
