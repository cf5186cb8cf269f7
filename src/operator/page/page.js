// The operator's page: follows the operator's event stream (page/events) and draws each cluster in SVG
// and HTML: the topology, the fork view, heights over time, the faults in force and the event log.
"use strict";

const store = {};          // cluster name -> {view, samples, events}
let about = null;
let renders = 0;
const TIPS = 6, GROUPS = 4;

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function short(h) { return h ? h.slice(0, 8) : "?"; }
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], {hour12: false}); }
function tipColour(i) { return i == null ? "#cbd2d9" : `var(--tip${i % TIPS})`; }

// Tick values for [lo, hi]: steps of 1, 2 or 5 times a power of ten, at least `min` apart, so that
// every label is distinct at its precision.
function ticks(lo, hi, count, min) {
  if (!(hi > lo)) { hi = lo + (min || 1); }
  const raw = (hi - lo) / Math.max(1, count);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 5, 10].map(m => m * p).find(s => s >= raw);
  if (min && step < min) { step = min; }
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) { out.push(+v.toFixed(10)); }
  return out;
}

// The convex hull of points (monotone chain).
function hull(points) {
  const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) { return p; }
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) { lower.pop(); } lower.push(q); }
  for (const q of p.slice().reverse()) { while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) { upper.pop(); } upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

function topology(p) {
  const at = {}; p.nodes.forEach(d => { at[d.name] = d; });
  const many = p.nodes.length > 40;
  const r = many ? 7 : 13;
  const out = [`<svg class="topology" viewBox="0 0 800 800" role="img" aria-label="topology of ${esc(p.cluster)}">`];
  out.push(`<defs><marker id="arrow-${esc(p.cluster)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>`);
  p.groups.forEach((g, i) => {
    const pts = g.members.filter(m => at[m]).map(m => [at[m].x, at[m].y]);
    if (!pts.length) { return; }
    const h = hull(pts);
    const d = "M" + h.map(q => q[0].toFixed(1) + "," + q[1].toFixed(1)).join("L") + "Z";
    const colour = `var(--group${i % GROUPS})`;
    const top = pts.reduce((a, b) => (b[1] < a[1] ? b : a));
    out.push(`<g class="group" data-segment="${g.id}" data-members="${esc(g.members.join(","))}">` +
      `<path class="group-hull" d="${d}" fill="${colour}" stroke="${colour}" stroke-width="${4 * r + 24}" stroke-linejoin="round"/>` +
      `<text class="group-label" x="${top[0].toFixed(1)}" y="${(top[1] - 2 * r - 14).toFixed(1)}" text-anchor="middle">segment ${g.id}</text></g>`);
  });
  const live = new Set(p.sessions.map(s => s.join("|")));
  const declared = new Set();
  p.edges.forEach(([a, b]) => {
    if (!at[a] || !at[b]) { return; }
    const key = [a, b].sort().join("|");
    declared.add(key);
    const on = live.has(key);
    out.push(`<line class="edge${on ? " live" : ""}" data-a="${esc(a)}" data-b="${esc(b)}" x1="${at[a].x}" y1="${at[a].y}" x2="${at[b].x}" y2="${at[b].y}"><title>${esc(a)} – ${esc(b)}: ${on ? "session up" : "no session"}</title></line>`);
  });
  p.sessions.forEach(([a, b]) => {
    if (declared.has([a, b].sort().join("|")) || !at[a] || !at[b]) { return; }
    out.push(`<line class="session-extra" data-a="${esc(a)}" data-b="${esc(b)}" x1="${at[a].x}" y1="${at[a].y}" x2="${at[b].x}" y2="${at[b].y}"><title>${esc(a)} – ${esc(b)}: a session not declared</title></line>`);
  });
  p.shaped.filter(s => s.to && at[s.to]).forEach(s => {
    const a = at[s.node], b = at[s.to];
    out.push(`<g class="shaped" data-node="${esc(s.node)}" data-to="${esc(s.to)}"><line class="shaped-link" x1="${a.x}" y1="${a.y}" x2="${b.x}" y2="${b.y}"/>` +
      `<text class="shaped-text" x="${((a.x + b.x) / 2).toFixed(1)}" y="${((a.y + b.y) / 2 - 6).toFixed(1)}" text-anchor="middle">${esc(s.shaping)}</text><title>${esc(s.node)} → ${esc(s.to)}: ${esc(s.shaping)}</title></g>`);
  });
  p.cuts.forEach(c => {
    const a = at[c.from], b = at[c.to];
    if (!a || !b) { return; }
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len, gap = r + 4;
    const x1 = a.x + ux * gap, y1 = a.y + uy * gap, x2 = b.x - ux * gap, y2 = b.y - uy * gap;
    const marker = `url(#arrow-${esc(p.cluster)})`;
    const ends = c.both_ways ? `marker-start="${marker}" marker-end="${marker}"` : `marker-end="${marker}"`;
    out.push(`<g class="cut ${c.both_ways ? "both" : "oneway"}" data-from="${esc(c.from)}" data-to="${esc(c.to)}">` +
      `<line class="cut" x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" ${ends}/>` +
      `<text class="cut-mark" x="${((a.x + b.x) / 2).toFixed(1)}" y="${((a.y + b.y) / 2).toFixed(1)}" text-anchor="middle" dominant-baseline="central">✕</text>` +
      `<title>cut ${esc(c.from)} ${c.both_ways ? "↔" : "→"} ${esc(c.to)} (${c.both_ways ? "both ways" : "one way"}, ${esc(c.block)})</title></g>`);
  });
  p.nodes.forEach(d => {
    const wide = p.shaped.find(s => s.node === d.name && !s.to);
    const title = [`${d.name}: ${d.state}${d.held ? " (held)" : ""}`, `height ${d.height == null ? "?" : d.height}`,
      `best ${short(d.best)}`, `${d.peers} peers`].concat(d.links ? [d.links] : [], d.error ? [d.error] : []).join("\n");
    const mark = d.state === "paused" ? "❚❚" : d.state === "running" ? "" : "■";
    // Labels beside the node, on its left in the right half so that they stay inside the drawing.
    const left = d.x > 560, anchor = left ? "end" : "start", lx = left ? d.x - r - 5 : d.x + r + 5;
    out.push(`<g class="node" data-name="${esc(d.name)}" data-state="${esc(d.state)}" data-held="${d.held}" data-tip="${d.tip == null ? "" : d.tip}">` +
      (wide ? `<circle class="shaped-ring" cx="${d.x}" cy="${d.y}" r="${r + 6}"/>` : "") +
      (d.held ? `<circle class="held-ring" cx="${d.x}" cy="${d.y}" r="${r + 3}"/>` : "") +
      `<circle class="dot" cx="${d.x}" cy="${d.y}" r="${r}" fill="${tipColour(d.tip)}"/>` +
      (mark ? `<text class="state-mark" x="${d.x}" y="${d.y}">${mark}</text>` : "") +
      (many ? "" : `<text class="name" x="${lx}" y="${d.y - 1}" text-anchor="${anchor}">${esc(d.name)}</text>` +
        `<text class="sub" x="${lx}" y="${d.y + 13}" text-anchor="${anchor}">${d.height == null ? d.state : "h " + d.height}${wide ? " · " + esc(wide.shaping) : ""}</text>`) +
      `<title>${esc(title)}</title></g>`);
  });
  out.push("</svg>");
  const legend = p.tips.map((t, i) => `<span><span class="swatch" style="background:${tipColour(i)}"></span>${t.main ? "main tip" : "tip"} ${short(t.hash)} · height ${t.height == null ? "?" : t.height} · ${t.nodes} node${t.nodes === 1 ? "" : "s"}</span>`);
  legend.push(`<span><svg width="22" height="8"><line x1="0" y1="4" x2="22" y2="4" stroke="#7b8794" stroke-width="1.5"/></svg> session</span>`);
  legend.push(`<span><svg width="22" height="8"><line x1="0" y1="4" x2="22" y2="4" stroke="#b8c0c8" stroke-width="1.5" stroke-dasharray="5 4"/></svg> declared, no session</span>`);
  if (p.cuts.length) { legend.push(`<span style="color:var(--cut)">✕ cut (arrow: the way packets are stopped)</span>`); }
  if (p.shaped.length) { legend.push(`<span style="color:#8a5d06">┅ shaped</span>`); }
  return out.join("") + `<div class="legend">${legend.join("")}</div>`;
}

function forkView(p, reorgs) {
  const f = p.forks;
  if (!f.blocks.length) { return `<p class="none">No chain read yet.</p>`; }
  const byHash = {}; f.blocks.forEach(b => { byHash[b.hash] = b; });
  const row = {}; f.blocks.filter(b => b.main).forEach(b => { row[b.hash] = 0; });
  const branches = f.branches.slice().sort((a, b) => a.fork_height - b.fork_height || a.tip.localeCompare(b.tip));
  branches.forEach((br, i) => {
    let h = br.tip;
    while (h && byHash[h] && row[h] === undefined) { row[h] = i + 1; h = byHash[h].prev; }
  });
  const cols = f.top - f.bottom + 1, colW = 64, rowH = 58, left = 10, top = 26;
  const width = Math.max(560, left + cols * colW + 190), height = top + (branches.length + 1) * rowH + 10;
  const x = h => left + (h - f.bottom) * colW + colW / 2, y = r => top + r * rowH + 18;
  const colourOf = {}; p.tips.forEach((t, i) => { colourOf[t.hash] = tipColour(i); });
  const out = [`<svg class="fork" viewBox="0 0 ${width} ${height}" role="img" aria-label="fork view of ${esc(p.cluster)}">`];
  for (let h = f.bottom; h <= f.top; h++) { out.push(`<text class="axis" x="${x(h)}" y="12">${h}</text>`); }
  f.blocks.forEach(b => {
    const parent = b.prev && byHash[b.prev];
    if (parent && row[b.hash] !== undefined && row[parent.hash] !== undefined) {
      const x1 = x(parent.height) + 20, y1 = y(row[parent.hash]), x2 = x(b.height) - 20, y2 = y(row[b.hash]);
      out.push(`<path class="link" d="M${x1},${y1} C${x1 + 14},${y1} ${x2 - 14},${y2} ${x2},${y2}"/>`);
    }
  });
  const stale = new Set();
  branches.forEach(br => {
    let h = br.tip;
    while (h && byHash[h] && !byHash[h].main) {
      if (br.stale) { stale.add(h); } else if (!colourOf[h]) { colourOf[h] = colourOf[br.tip]; }
      h = byHash[h].prev;
    }
  });
  f.blocks.forEach(b => {
    if (row[b.hash] === undefined) { return; }
    const fill = b.main ? "var(--main)" : (colourOf[b.hash] || "#7b8794");
    out.push(`<g class="block${b.main ? " main" : ""}${stale.has(b.hash) ? " stale" : ""}" data-hash="${esc(b.hash)}" data-height="${b.height}">` +
      `<rect x="${x(b.height) - 20}" y="${y(row[b.hash]) - 12}" width="40" height="24" fill="${fill}"/>` +
      `<text x="${x(b.height)}" y="${y(row[b.hash])}">${esc(b.hash.slice(0, 4))}</text>` +
      `<title>block ${b.height} ${esc(b.hash)}${b.nodes.length ? "\nbest of " + esc(b.nodes.join(", ")) : ""}</title></g>`);
    if (b.nodes.length) {
      const who = b.nodes.length > 6 ? `${b.nodes.length} nodes` : b.nodes.join(" ");
      out.push(`<text class="who" x="${x(b.height) - 20}" y="${y(row[b.hash]) + 24}">${esc(who)}</text>`);
    }
  });
  branches.forEach((br, i) => {
    const depth = reorgs.filter(r => r.from === br.tip || stale.has(r.from)).reduce((m, r) => Math.max(m, r.depth), 0);
    const moved = [...new Set(reorgs.filter(r => r.from === br.tip || stale.has(r.from)).map(r => r.node))];
    const words = br.stale
      ? `stale · ${br.length} block${br.length === 1 ? "" : "s"} off height ${br.fork_height}` + (depth ? ` · reorg depth ${depth} (${moved.join(", ")})` : "")
      : `fork · ${br.length} block${br.length === 1 ? "" : "s"} off height ${br.fork_height} · ${br.nodes.length} node${br.nodes.length === 1 ? "" : "s"}`;
    const tx = Math.min(x(br.height) + 28, width - 180);
    out.push(`<text class="branch-label${br.stale ? " stale" : ""}" data-tip="${esc(br.tip)}" data-length="${br.length}" data-reorg-depth="${depth}" x="${tx}" y="${y(i + 1) + 4}">${esc(words)}</text>`);
  });
  out.push("</svg>");
  const recent = reorgs.slice(-5).reverse().map(r => `<li>${clock(r.at)} · ${esc(r.node)} reorganised ${r.depth} block${r.depth === 1 ? "" : "s"} (${short(r.from)} → ${short(r.to)})</li>`);
  return out.join("") + `<div class="legend"><span><span class="swatch" style="background:var(--main)"></span>main chain</span><span>coloured: another node's tip</span><span>dashed: stale (no node's best)</span></div>` +
    (recent.length ? `<ul class="force reorgs">${recent.join("")}</ul>` : "");
}

function heights(c) {
  const names = c.names, samples = c.samples;
  if (!samples.length) { return `<p class="none">No sample yet.</p>`; }
  const W = 640, H = 240, L = 48, R = 12, T = 10, B = 26;
  const t0 = samples[0][0], t1 = Math.max(samples[samples.length - 1][0], t0 + 10);
  let lo = Infinity, hi = -Infinity;
  samples.forEach(s => s.slice(1).forEach(h => { if (h != null) { lo = Math.min(lo, h); hi = Math.max(hi, h); } }));
  if (lo === Infinity) { return `<p class="none">No node answered yet.</p>`; }
  if (hi - lo < 4) { hi = lo + 4; }
  const sx = t => L + (t - t0) / (t1 - t0) * (W - L - R), sy = h => T + (hi - h) / (hi - lo) * (H - T - B);
  const out = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="heights over time">`];
  ticks(lo, hi, 5, 1).forEach(v => out.push(`<line class="gridline" x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}"/><text class="tick" x="${L - 6}" y="${sy(v) + 4}" text-anchor="end">${v}</text>`));
  ticks(0, t1 - t0, 5, 1).filter(v => sx(t0 + v) + 26 <= W && sx(t0 + v) - 26 >= 0)
    .forEach(v => out.push(`<text class="tick" x="${sx(t0 + v)}" y="${H - 8}" text-anchor="middle">${clock(t0 + v)}</text>`));
  const tipOf = {}; (c.view.picture ? c.view.picture.nodes : []).forEach(d => { tipOf[d.name] = d.tip; });
  names.forEach((n, i) => {
    let d = "", prev = null;
    samples.forEach(s => {
      const h = s[i + 1];
      if (h == null) { prev = null; return; }
      d += (prev == null ? `M${sx(s[0]).toFixed(1)},${sy(h).toFixed(1)}` : `H${sx(s[0]).toFixed(1)}V${sy(h).toFixed(1)}`);
      prev = h;
    });
    out.push(`<path class="series" data-node="${esc(n)}" d="${d}" stroke="${tipColour(tipOf[n])}" opacity="0.8"><title>${esc(n)}</title></path>`);
  });
  out.push("</svg>");
  return out.join("");
}

function happenings(c) {
  const p = c.view.picture;
  const force = p && p.in_force.length
    ? `<ul class="force">${p.in_force.map(f => `<li data-what="${esc(f.what)}"><span>${esc(f.what)}</span><code>${esc(f.cli)}</code></li>`).join("")}</ul>`
    : `<p class="none">No fault in force.</p>`;
  const rows = c.events.slice(-200).reverse().map(e => `<tr class="event" data-kind="${esc(e.kind)}"><td class="time">${clock(e.at)}</td><td class="kind-cell"><span class="kind kind-${esc(e.kind)}">${esc(e.kind)}</span></td><td>${esc(e.text)}</td></tr>`);
  return `<div class="columns"><div><h3>In force</h3>${force}</div><div><h3>Event log</h3><div class="log">${rows.length ? `<table class="events">${rows.join("")}</table>` : `<p class="none">Nothing yet.</p>`}</div></div></div>`;
}

function facts(c) {
  const p = c.view.picture, pass = c.view.pass;
  const parts = [];
  if (p) {
    const up = p.nodes.filter(d => d.state === "running").length;
    parts.push(`${p.nodes.length} nodes, ${up} running`, `${p.tips.length} tip${p.tips.length === 1 ? "" : "s"}`);
    if (p.groups.length) { parts.push(`${p.groups.length} segments`); }
    parts.push(`read ${clock(p.at)}`);
  }
  if (pass) { parts.push(`last pass ${clock(pass.started)} (${esc(pass.trigger)})${pass.error ? " failed" : ""}`); }
  return parts.join(" · ");
}

function render() {
  const main = document.getElementById("clusters");
  const names = Object.keys(store).sort();
  if (!names.length) { main.innerHTML = `<p class="empty">The operator watches no cluster yet.</p>`; return; }
  main.querySelectorAll("section.cluster").forEach(s => { if (!store[s.dataset.cluster]) { s.remove(); } });
  const empty = main.querySelector(".empty");
  if (empty) { empty.remove(); }
  names.forEach(name => {
    const c = store[name];
    let s = main.querySelector(`section.cluster[data-cluster="${CSS.escape(name)}"]`);
    if (!s) {
      s = document.createElement("section");
      s.className = "cluster"; s.dataset.cluster = name;
      s.innerHTML = `<h2><span>${esc(name)}</span><span class="facts"></span></h2><p class="error" hidden></p>` +
        `<div class="grid"><div class="panel topo"><h3>Topology</h3><div class="body"></div></div>` +
        `<div class="side"><div class="panel chain"><h3>Chain</h3><div class="body"></div></div>` +
        `<div class="panel heights"><h3>Heights over time</h3><div class="body"></div></div></div>` +
        `<div class="panel happenings"><div class="body"></div></div></div>`;
      main.appendChild(s);
    }
    s.querySelector(".facts").innerHTML = facts(c);
    const err = s.querySelector("p.error");
    err.hidden = !c.view.error; err.textContent = c.view.error ? "cannot read the cluster: " + c.view.error : "";
    const p = c.view.picture;
    const key = p ? JSON.stringify(Object.assign({}, p, {at: 0})) + JSON.stringify(c.view.reorgs) : "";
    if (key !== s.dataset.key) {
      s.dataset.key = key;
      s.querySelector(".topo .body").innerHTML = p ? topology(p) : `<p class="none">Not read yet.</p>`;
      s.querySelector(".chain .body").innerHTML = p ? forkView(p, c.view.reorgs) : "";
    }
    s.querySelector(".heights .body").innerHTML = heights(c);
    s.querySelector(".happenings .body").innerHTML = happenings(c);
  });
}

function take(message) {
  about = message.about;
  document.getElementById("mode").textContent = about.read_only ? "read-only dashboard" : "operator";
  if (message.full) { Object.keys(store).forEach(k => { if (!message.clusters[k]) { delete store[k]; } }); }
  Object.entries(message.clusters).forEach(([name, v]) => {
    const c = store[name];
    if (message.full || !c || c.names.join() !== v.names.join()) {
      store[name] = {view: v, names: v.names, samples: v.samples.slice(), events: v.events.slice()};
    } else {
      c.view = v;
      c.samples = c.samples.concat(v.samples).slice(-300);
      c.events = c.events.concat(v.events).slice(-500);
    }
  });
  Object.keys(store).forEach(k => { if (!message.clusters[k]) { delete store[k]; } });
  render();
  renders += 1;
  // Milliseconds from the start of the navigation to the first state drawn (the page benchmark reads it).
  if (renders === 1) { document.body.dataset.firstRenderMs = String(performance.now()); }
  document.body.dataset.renders = String(renders);
}

function connect() {
  const connection = document.getElementById("connection"), lost = document.getElementById("lost");
  const source = new EventSource("page/events");
  source.addEventListener("open", () => {
    document.body.dataset.connection = "live";
    connection.textContent = "live";
    lost.hidden = true;
  });
  source.addEventListener("state", e => take(JSON.parse(e.data)));
  source.addEventListener("error", () => {
    if (document.body.dataset.connection !== "lost") {
      lost.textContent = `Lost the operator at ${new Date().toLocaleTimeString([], {hour12: false})}; what is shown is as it was then. Trying again…`;
    }
    document.body.dataset.connection = "lost";
    connection.textContent = "lost the operator";
    lost.hidden = false;
  });
}

connect();
