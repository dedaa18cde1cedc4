// GridFlex dashboard: polls the JSON API beside the pages and redraws; no framework, no other host.
// Times are shown in the operator's time zone (dashboard.timezone, else the browser's), UTC on hover.
"use strict";

const GF = (() => {
  const body = document.body;
  const tz = body.dataset.tz || Intl.DateTimeFormat().resolvedOptions().timeZone;
  const pollMs = Number(body.dataset.pollMs) || 2000;
  const wall = new Intl.DateTimeFormat("sv-SE", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  // "2030-01-15 13:00:00" in the operator's zone: what plotly draws on its (zone-less) date axis
  function local(iso) { return iso ? wall.format(new Date(iso)).replace(",", "") : "–"; }
  function utc(iso) { return iso ? new Date(iso).toISOString().replace(".000Z", "Z") : ""; }
  function num(v, digits = 1) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }
  function esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function kv(obj, digits = 1) {
    return Object.entries(obj || {}).map(([k, v]) => `${esc(k)} ${typeof v === "number" ? num(v, digits) : esc(v)}`).join(", ");
  }
  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }
  // run fn now and every pollMs; a failed poll shows in the banner, it is not a console error
  function poll(fn) {
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try { await fn(); setPollError(null); } catch (e) { setPollError(e); } finally { busy = false; }
    };
    tick();
    return setInterval(tick, pollMs);
  }
  let pollError = null;
  function setPollError(e) { pollError = e ? String(e.message || e) : null; }

  function renderStatus(st) {
    document.getElementById("as-of").textContent = st.data_as_of ? local(st.data_as_of) : "–";
    document.getElementById("as-of").title = st.data_as_of ? utc(st.data_as_of) : "";
    document.getElementById("tz-name").textContent = `(${tz})`;
    const b = document.getElementById("broker");
    b.textContent = st.broker_connected ? "broker connected" : "broker lost";
    b.className = st.broker_connected ? "ok" : "bad";
    const banners = [...st.banners];
    if (pollError) banners.push(`The dashboard cannot reach the controller: ${pollError}`);
    document.getElementById("banners").innerHTML = banners.map((t) => `<div class="banner">${esc(t)}</div>`).join("");
  }
  function startStatus() {
    document.querySelectorAll(".tz-label").forEach((el) => { el.textContent = tz; });
    const tick = async () => {
      try { renderStatus(await getJSON("/fleet/status")); } catch (e) { setPollError(e); }
    };
    tick();
    setInterval(tick, pollMs);
  }
  const plotConfig = { displaylogo: false, responsive: true };
  return { tz, local, utc, num, esc, kv, getJSON, poll, startStatus, plotConfig };
})();

const PAGES = {
  overview() {
    let drawnAt = null;
    GF.poll(async () => {
      const o = await GF.getJSON("/fleet/overview");
      document.getElementById("fleet-kw").textContent = GF.num(o.fleet_kw, 2);
      document.getElementById("fleet-limit").textContent = o.limits.length
        ? o.limits.map((l) => `${l.name}: ${GF.num(l.limit_kw, 0)} kW`).join(" · ") + ` (${GF.num(o.loading_now_pct, 0)} %)`
        : "no congestion limit configured";
      document.getElementById("overloaded-count").textContent = o.overloaded_today.count;
      const s = o.sites;
      document.getElementById("sites-modes").innerHTML =
        `<span class="mode-online">${s.online} online</span> · <span class="mode-offline">${s.offline} offline</span> · ` +
        `<span class="mode-fallback">${s.fallback} fallback</span> · <span class="mode-unknown">${s.unknown} unknown</span>`;
      const c = o.commands.counts;
      document.getElementById("command-counts").textContent =
        `${c.sent} sent · ${c.applied} applied · ${c.clamped} clamped · ${c.rejected} rejected · ${c.missing} missing`;
      const lat = o.commands.ack_latency_ms;
      document.getElementById("ack-latency").textContent = `ack latency p50 ${GF.num(lat.p50, 0)} ms · p99 ${GF.num(lat.p99, 0)} ms (${lat.n} acks)`;
      const h = o.horizon;
      const key = `${h.at}|${o.fleet_kw}`;  // redraw for a new plan or a new measurement only
      if (drawnAt === key) return;
      drawnAt = key;
      const x = h.start.map(GF.local);
      const hover = h.start.map(GF.utc);
      const traces = [];
      if (h.p10_kw.length) {
        traces.push({ x, y: h.p10_kw, name: "p10", mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip" });
        traces.push({ x, y: h.p90_kw, name: "forecast p10–p90", mode: "lines", fill: "tonexty", fillcolor: "rgba(31,111,92,0.15)", line: { width: 0 }, hoverinfo: "skip" });
      }
      const tmpl = "%{y:.1f} kW<br>%{customdata} UTC<extra>%{fullData.name}</extra>";
      traces.push({ x, y: h.baseline_kw, customdata: hover, name: "forecast p50 (no control)", mode: "lines", line: { color: "#1f6f5c", dash: "dot" }, hovertemplate: tmpl });
      traces.push({ x, y: h.planned_kw, customdata: hover, name: "planned", mode: "lines", line: { color: "#1f4e9e", width: 2.5 }, hovertemplate: tmpl });
      for (const l of o.limits) {
        traces.push({ x: x.length ? [x[0], x[x.length - 1]] : [], y: [l.limit_kw, l.limit_kw], name: l.name, mode: "lines", line: { color: "#b3261e", dash: "dash" } });
      }
      if (x.length) {
        traces.push({ x: [GF.local(o.now)], y: [o.fleet_kw], customdata: [GF.utc(o.now)], name: "measured now", mode: "markers", marker: { size: 10, color: "#000" }, hovertemplate: tmpl });
      }
      document.getElementById("horizon-note").textContent = h.at ? `plan of ${GF.local(h.at)} (${GF.tz}), ${h.start.length} intervals of ${h.period_s / 60} min` : "no plan yet";
      Plotly.react("chart-horizon", traces, {
        margin: { t: 10, r: 10, b: 40, l: 50 }, yaxis: { title: { text: "kW (+ = load)" } }, xaxis: { type: "date" },
        legend: { orientation: "h" }, hovermode: "x unified",
      }, GF.plotConfig);
    });
  },

  grid() {
    let scenario = null, net = null, netAt = null;
    const colour = (pct) => (pct === null || pct === undefined ? "#9aa5ad" : pct >= 100 ? "#b3261e" : pct >= 80 ? "#e08e0b" : "#1f7a4d");
    const draw = async () => {
      const [loading, overview, st, fc, fcLines] = await Promise.all([GF.getJSON("/grid/loading"), GF.getJSON("/fleet/overview"), GF.getJSON("/fleet/status"),
        GF.getJSON("/forecast/congestion?kind=transformer").catch(() => null), GF.getJSON("/forecast/congestion?kind=line&top=10").catch(() => null)]);
      const button = document.getElementById("run-scenarios");  // absent for a viewer (operator only)
      if (button) {
        button.disabled = !st.scenario_forecast;
        button.title = st.scenario_forecast ? "" : "needs a plan from a planner with a per-site forecast";
      }
      if (!net || (net.source === "generated" && loading.at !== netAt)) {  // the drawing changes rarely
        net = await GF.getJSON("/grid/network");
        netAt = loading.at;
      }
      const el = {};
      el.hvmv = { now: overview.loading_now_pct, max: loading.loading_pct.length ? Math.max(...loading.loading_pct) : null, p: loading.p_exceed.length ? Math.max(...loading.p_exceed) : null, src: "plan" };
      // the background probabilistic forecast of every plan: every transformer, the most critical lines
      const byBranch = Object.fromEntries(net.trafos.map((t) => [t.branch, t.element]));
      const fcNote = [];
      if (fc && fc.status !== "pending" && fc.elements) {
        for (const f of [...fc.elements, ...(fcLines?.elements ?? [])]) {
          const name = f.kind === "transformer" ? (byBranch[f.id] ?? f.name) : f.name;
          const e = (el[name] ??= { now: null, max: null, p: null, src: "" });
          e.max = Math.max(e.max ?? 0, ...f.expected.filter((v) => v !== null));
          e.p = Math.max(e.p ?? 0, f.max_p_exceed ?? 0);
          e.src = e.src === "plan" ? `plan + forecast (${fc.scenarios} scenarios)` : `forecast (${fc.scenarios} scenarios)`;
        }
        fcNote.push(`forecast of ${GF.local(fc.computed_at)}: ${fc.alerts.length} alert(s)` +
          (fc.alerts.length ? ` — ${fc.alerts.slice(0, 3).map((a) => `${a.name} P ${GF.num(a.p_exceed, 2)}`).join(", ")}` : ""));
      }
      if (scenario) {
        for (const r of scenario) {
          const e = (el[r.element] ??= { now: null, max: null, p: null, src: "" });
          if (e.src !== "plan") { e.now ??= r.loading_pct; e.src = `${r.scenarios} scenarios`; }
          e.max = Math.max(e.max ?? 0, r.loading_pct);
          e.p = Math.max(e.p ?? 0, r.p_exceed);
        }
      }
      const groupOf = (g) => (g === "mv" ? "hvmv" : g);
      const traces = net.lines.map((l) => ({
        x: l.x, y: l.y, mode: "lines", name: l.group, hoverinfo: "name", showlegend: false,
        line: { color: colour(el[groupOf(l.group)]?.max), width: l.group === "mv" ? 2.5 : 1.2 },
      }));
      traces.push({
        x: net.trafos.map((t) => t.x), y: net.trafos.map((t) => t.y), mode: "markers+text", name: "transformers",
        text: net.trafos.map((t) => t.element), textposition: "top center", showlegend: false,
        marker: { size: 13, symbol: "square", color: net.trafos.map((t) => colour(el[t.element]?.max)), line: { color: "#000", width: 1 } },
        customdata: net.trafos.map((t) => `${GF.num(el[t.element]?.max, 0)} % max, P(exceed) ${GF.num(el[t.element]?.p, 2)}`),
        hovertemplate: "%{text}: %{customdata}<extra></extra>",
      });
      const geo = net.source === "geodata";
      Plotly.react("chart-network", traces, {
        margin: { t: 10, r: 10, b: 30, l: 40 }, hovermode: "closest",
        xaxis: { visible: geo, title: { text: geo ? "longitude" : "" } }, yaxis: { visible: geo, scaleanchor: geo ? "x" : undefined },
      }, GF.plotConfig);
      document.getElementById("network-note").textContent =
        `${geo ? "pandapower geodata" : "generated one-line layout"} · ${net.n_lines} lines · colour = max loading over the horizon (green < 80 %, amber < 100 %, red ≥ 100 %, grey = no forecast)`;
      document.getElementById("forecast-note").textContent = fcNote.length ? fcNote.join("") : "no probabilistic forecast yet (it runs after each plan when control.congestion_scenarios > 0)";
      const rows = Object.entries(el).map(([name, e]) =>
        `<tr><td>${GF.esc(name)}</td><td class="num">${GF.num(e.now, 0)}</td><td class="num">${GF.num(e.max, 0)}</td><td class="num">${GF.num(e.p, 2)}</td><td>${GF.esc(e.src)}</td></tr>`);
      document.querySelector("#elements tbody").innerHTML = rows.join("");
    };
    document.getElementById("run-scenarios")?.addEventListener("click", async () => {
      const note = document.getElementById("scenario-note");
      note.textContent = "running…";
      const r = await fetch("/forecast/congestion?scenarios=50");
      if (r.ok) { scenario = await r.json(); note.textContent = scenario.length ? "" : "no plan yet"; await draw(); }
      else { note.textContent = `not available: ${(await r.json()).detail ?? r.status}`; }
    });
    GF.poll(draw);
  },

  sites() {
    const st = { sort: "site", desc: false, offset: 0, limit: 50 };
    const q = document.getElementById("q"), mode = document.getElementById("mode");
    const load = async () => {
      const p = new URLSearchParams({ sort: st.sort, desc: st.desc, offset: st.offset, limit: st.limit, q: q.value });
      if (mode.value) p.set("mode", mode.value);
      const d = await GF.getJSON(`/fleet/sites?${p}`);
      document.getElementById("site-count").textContent = `${d.matched} of ${d.total} sites`;
      document.getElementById("page-no").textContent = d.matched ? `${d.offset + 1}–${Math.min(d.offset + d.limit, d.matched)}` : "";
      document.getElementById("prev").disabled = d.offset === 0;
      document.getElementById("next").disabled = d.offset + d.limit >= d.matched;
      document.querySelector("#sites tbody").innerHTML = d.rows.map((r) => `<tr data-site="${GF.esc(r.site)}">
        <td><a href="/ui/sites/${encodeURIComponent(r.site)}">${GF.esc(r.site)}</a></td><td class="mode-${GF.esc(r.mode)}">${GF.esc(r.mode)}</td>
        <td title="${GF.utc(r.last_seen)} UTC">${GF.local(r.last_seen)}</td><td class="num">${r.watermark}</td><td class="num p-net">${GF.num(r.p_net_kw, 2)}</td>
        <td>${GF.kv(r.assets_p_kw)}</td><td class="num">${GF.num(r.soc_pct, 0)}</td><td>${GF.kv(r.caps_kw)}</td><td>${GF.kv(r.setpoints_kw)}</td>
        <td>${r.last_ack ? `<span class="st-${GF.esc(r.last_ack.status)}">${GF.esc(r.last_ack.status)}</span> ${GF.esc(r.last_ack.asset)} ${GF.local(r.last_ack.ts)}` : "–"}</td></tr>`).join("");
      document.querySelectorAll("#sites th[data-sort]").forEach((th) => th.classList.toggle("sorted", th.dataset.sort === st.sort));
    };
    document.querySelectorAll("#sites th[data-sort]").forEach((th) => th.addEventListener("click", () => {
      st.desc = st.sort === th.dataset.sort ? !st.desc : false;
      st.sort = th.dataset.sort; st.offset = 0; load();
    }));
    q.addEventListener("input", () => { st.offset = 0; load(); });
    mode.addEventListener("change", () => { st.offset = 0; load(); });
    document.getElementById("prev").addEventListener("click", () => { st.offset = Math.max(0, st.offset - st.limit); load(); });
    document.getElementById("next").addEventListener("click", () => { st.offset += st.limit; load(); });
    GF.poll(load);
  },

  site() {
    const site = document.getElementById("site-tiles").dataset.site;
    GF.poll(async () => {
      const [s, h] = await Promise.all([GF.getJSON(`/sites/${encodeURIComponent(site)}`), GF.getJSON(`/sites/${encodeURIComponent(site)}/history`)]);
      document.getElementById("site-mode").textContent = s.mode;
      document.getElementById("site-p-kw").textContent = GF.num(s.p_net_kw, 2);
      const traces = [];
      const tmpl = (unit) => `%{y:.2f} ${unit}<br>%{customdata} UTC<extra>%{fullData.name}</extra>`;
      for (const ser of h.series) {
        const soc = ser.point.endsWith("_pct");
        if (!ser.point.endsWith("_kw") && !soc) continue;
        traces.push({ x: ser.ts.map(GF.local), y: ser.value, customdata: ser.ts.map(GF.utc), name: ser.point, mode: "lines+markers", marker: { size: 3 },
          yaxis: soc ? "y2" : "y", hovertemplate: tmpl(soc ? "%" : "kW") });
      }
      const caps = h.commands.filter((c) => c.kind === "p_limit_kw");
      if (caps.length) traces.push({ x: caps.map((c) => GF.local(c.ts)), y: caps.map((c) => c.value), customdata: caps.map((c) => GF.utc(c.ts)),
        text: caps.map((c) => `${c.asset} cap (${c.status})`), name: "caps (p_limit_kw)", mode: "markers", line: { shape: "hv" }, marker: { symbol: "triangle-down", size: 9 },
        yaxis: "y3", hovertemplate: "%{text}: %{y:.1f} kW<br>%{customdata} UTC<extra></extra>" });
      const sets = h.commands.filter((c) => c.kind !== "p_limit_kw" && typeof c.value === "number");
      if (sets.length) traces.push({ x: sets.map((c) => GF.local(c.ts)), y: sets.map((c) => c.value), customdata: sets.map((c) => GF.utc(c.ts)),
        text: sets.map((c) => `${c.asset} ${c.kind} (${c.status})`), name: "setpoint commands", mode: "markers", marker: { symbol: "diamond", size: 8 },
        yaxis: "y3", hovertemplate: "%{text}: %{y:.2f}<br>%{customdata} UTC<extra></extra>" });
      Plotly.react("chart-site", traces, {
        margin: { t: 10, r: 10, b: 40, l: 60 }, hovermode: "x unified", legend: { orientation: "h" },
        xaxis: { type: "date", range: [GF.local(h.from), GF.local(h.to)], anchor: "y3" },
        yaxis: { domain: [0.55, 1], title: { text: "kW (+ = load)" } },
        yaxis2: { domain: [0.3, 0.5], title: { text: "SoC %" }, range: [0, 100] },
        yaxis3: { domain: [0, 0.25], title: { text: "commands" } },
      }, GF.plotConfig);
    });
  },

  commands() {
    const status = document.getElementById("status"), site = document.getElementById("site");
    const load = async () => {
      const p = new URLSearchParams({ limit: 500 });
      if (status.value) p.set("status", status.value);
      if (site.value.trim()) p.set("site", site.value.trim());
      const d = await GF.getJSON(`/commands/log?${p}`);
      const c = d.counts, lat = d.ack_latency_ms;
      document.getElementById("command-summary").textContent =
        `${c.sent} sent · ${c.applied} applied · ${c.clamped} clamped · ${c.rejected} rejected · ${c.failed} failed · ${c.missing} missing · ${c.pending} pending · ack p50 ${GF.num(lat.p50, 0)} ms, p99 ${GF.num(lat.p99, 0)} ms`;
      document.querySelector("#commands tbody").innerHTML = d.recent.map((r) => `<tr><td title="${GF.utc(r.ts)} UTC">${GF.local(r.ts)}</td>
        <td><a href="/ui/sites/${encodeURIComponent(r.site)}">${GF.esc(r.site)}</a></td><td>${GF.esc(r.asset)}</td><td>${GF.esc(r.kind)}</td>
        <td class="num">${typeof r.value === "number" ? GF.num(r.value, 2) : GF.esc(r.value)}</td><td class="st-${GF.esc(r.status)}">${GF.esc(r.status)}</td>
        <td>${GF.esc(r.reason ?? "")}</td><td class="num">${GF.num(r.latency_ms, 0)}</td></tr>`).join("");
    };
    status.addEventListener("change", load);
    site.addEventListener("input", load);
    GF.poll(load);
  },

  events() {
    const site = document.getElementById("site"), kind = document.getElementById("kind");
    const load = async () => {
      const p = new URLSearchParams({ limit: 500 });
      if (site.value.trim()) p.set("site", site.value.trim());
      if (kind.value.trim()) p.set("kind", kind.value.trim());
      const d = await GF.getJSON(`/events?${p}`);
      document.querySelector("#events tbody").innerHTML = d.map((e) => `<tr><td title="${GF.utc(e.ts)} UTC">${GF.local(e.ts)}</td>
        <td>${GF.esc(e.site)}</td><td>${GF.esc(e.kind)}</td><td>${GF.esc(e.severity)}</td><td>${GF.esc(e.asset ?? "")}</td><td>${GF.esc(e.message)}</td></tr>`).join("");
    };
    site.addEventListener("input", load);
    kind.addEventListener("input", load);
    GF.poll(load);
  },
};

GF.startStatus();
(PAGES[document.body.dataset.page] || (() => {}))();
