/// The service map page (`hubble.ui.enabled`): one self-contained HTML
/// document (no external assets) that polls the agent's flows and draws
/// workloads as nodes and their flows as edges coloured by verdict, with a
/// filterable flow table underneath.
enum ServiceMapPage {
    static let html = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Hubble service map</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 0; color: #1d2733; background: #f6f8fa; }
  header { padding: 10px 16px; background: #1d2733; color: #fff; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  #status { opacity: .8; }
  main { padding: 12px 16px; }
  #map { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; width: 100%; height: 460px; }
  .node circle { fill: #e7f0fb; stroke: #3b7dd8; stroke-width: 2; }
  .node.world circle { fill: #f3f3f3; stroke: #888; }
  .node text { font-size: 12px; text-anchor: middle; }
  .edge { fill: none; stroke-width: 2; }
  .edge.FORWARDED { stroke: #2da44e; }
  .edge.DROPPED { stroke: #cf222e; stroke-dasharray: 6 3; }
  .edge.AUDIT { stroke: #bf8700; }
  .edge-label { font-size: 11px; fill: #57606a; }
  .filters { margin: 12px 0 6px; display: flex; gap: 8px; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { border-bottom: 1px solid #eaeef2; padding: 4px 8px; text-align: left; white-space: nowrap; }
  td.DROPPED { color: #cf222e; font-weight: 600; } td.FORWARDED { color: #2da44e; } td.AUDIT { color: #bf8700; }
</style>
</head>
<body data-errors="0" data-polls="0">
<header><h1>Hubble service map</h1><span id="status">connecting…</span></header>
<main>
  <svg id="map" role="img" aria-label="service map"><defs>
    <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>
    <g id="edges"></g><g id="nodes"></g></svg>
  <div class="filters">
    <input id="f-text" placeholder="filter: pod, namespace, label, address" size="40">
    <select id="f-verdict"><option value="">any verdict</option><option>FORWARDED</option><option>DROPPED</option><option>AUDIT</option></select>
  </div>
  <table><thead><tr><th>Time</th><th>Node</th><th>Source</th><th>Destination</th><th>Port</th><th>Verdict</th><th>Summary</th></tr></thead>
    <tbody id="flows"></tbody></table>
</main>
<script>
"use strict";
// Errors are counted on <body data-errors> (the browser test reads it) and still reported.
const countError = () => { document.body.dataset.errors = String(Number(document.body.dataset.errors) + 1); };
window.addEventListener("error", countError);
window.addEventListener("unhandledrejection", countError);
const consoleError = console.error.bind(console);
console.error = (...args) => { countError(); consoleError(...args); };
const RESERVED = { 1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node", 7: "kube-apiserver", 8: "ingress" };
const flows = [];
let after = 0;
const SVG = "http://www.w3.org/2000/svg";

// A workload: a pod's app (or its name) in its namespace; anything else by its reserved identity.
function workload(ep, ip) {
  if (!ep) return { key: "ip:" + ip, label: ip, world: true };
  const app = (ep.labels || []).find(l => /(^|:)app=/.test(l));
  if (ep.namespace && (app || ep.pod_name)) {
    const name = app ? app.split("=")[1] : ep.pod_name;
    return { key: ep.namespace + "/" + name, label: ep.namespace + "/" + name, world: false };
  }
  const reserved = (ep.labels || []).find(l => l.startsWith("reserved:"));
  const name = reserved ? reserved.slice(9) : RESERVED[ep.identity];
  return { key: name ? "reserved:" + name : "id:" + ep.identity, label: name || "identity " + ep.identity, world: true };
}

function port(f) { const l4 = f.l4 || {}; const p = l4.TCP || l4.UDP; return p ? p.destination_port + (l4.TCP ? "/TCP" : "/UDP") : (l4.ICMPv4 ? "ICMP" : ""); }

function matches(f) {
  const text = document.getElementById("f-text").value.trim().toLowerCase();
  const verdict = document.getElementById("f-verdict").value;
  if (verdict && f.verdict !== verdict) return false;
  if (!text) return true;
  return JSON.stringify([f.source, f.destination, f.IP]).toLowerCase().includes(text);
}

function render() {
  const shown = flows.filter(matches);
  const nodes = new Map(), edges = new Map();
  for (const f of shown) {
    const s = workload(f.source, f.IP && f.IP.source), d = workload(f.destination, f.IP && f.IP.destination);
    nodes.set(s.key, s); nodes.set(d.key, d);
    const k = s.key + "|" + d.key + "|" + port(f) + "|" + f.verdict;
    const e = edges.get(k) || { from: s.key, to: d.key, port: port(f), verdict: f.verdict, count: 0 };
    e.count++; edges.set(k, e);
  }
  const list = [...nodes.values()].sort((a, b) => a.key.localeCompare(b.key));
  const svg = document.getElementById("map"), w = svg.clientWidth || 900, h = svg.clientHeight || 460;
  const r = Math.min(w, h) / 2 - 60, pos = new Map();
  list.forEach((n, i) => {
    const a = 2 * Math.PI * i / Math.max(list.length, 1) - Math.PI / 2;
    pos.set(n.key, { x: w / 2 + r * Math.cos(a), y: h / 2 + r * Math.sin(a) });
  });
  const ng = document.getElementById("nodes"), eg = document.getElementById("edges");
  ng.replaceChildren(); eg.replaceChildren();
  for (const n of list) {
    const p = pos.get(n.key), g = document.createElementNS(SVG, "g");
    g.setAttribute("class", "node" + (n.world ? " world" : ""));
    g.dataset.name = n.key;
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", p.x); c.setAttribute("cy", p.y); c.setAttribute("r", 22);
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", p.x); t.setAttribute("y", p.y + 38); t.textContent = n.label;
    g.append(c, t); ng.append(g);
  }
  let i = 0;
  for (const e of edges.values()) {
    const a = pos.get(e.from), b = pos.get(e.to), bend = 18 + 10 * (i++ % 3);
    const mx = (a.x + b.x) / 2 + (a.y === b.y ? 0 : bend), my = (a.y + b.y) / 2 - bend;
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("class", "edge " + e.verdict);
    path.setAttribute("d", e.from === e.to ? `M${a.x},${a.y - 22} q 40,-60 0,-44` : `M${a.x},${a.y} Q${mx},${my} ${b.x},${b.y}`);
    path.setAttribute("marker-end", "url(#arrow)");
    Object.assign(path.dataset, { from: e.from, to: e.to, verdict: e.verdict, port: e.port, count: e.count });
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", "edge-label"); label.setAttribute("x", mx); label.setAttribute("y", my);
    label.textContent = `${e.port} ×${e.count}`;
    eg.append(path, label);
  }
  const rows = shown.slice(-200).reverse().map(f => {
    const tr = document.createElement("tr");
    const s = workload(f.source, f.IP && f.IP.source).label, d = workload(f.destination, f.IP && f.IP.destination).label;
    for (const [v, cls] of [[f.time.slice(11, 23), ""], [f.node_name, ""], [s, ""], [d, ""], [port(f), ""],
                            [f.verdict + (f.drop_reason_desc ? " (" + f.drop_reason_desc + ")" : ""), f.verdict], [f.Summary, ""]]) {
      const td = document.createElement("td"); td.textContent = v; if (cls) td.className = cls; tr.append(td);
    }
    return tr;
  });
  document.getElementById("flows").replaceChildren(...rows);
}

async function poll() {
  try {
    const r = await fetch("api/flows?after=" + after);
    if (!r.ok) throw new Error("HTTP " + r.status);
    const body = await r.json();
    for (const rec of body.flows) { flows.push(rec.flow); after = rec.seq; }
    if (flows.length > 4095) flows.splice(0, flows.length - 4095);
    const s = body.status;
    document.getElementById("status").textContent =
      `${s.nodeName}: ${s.currentFlows}/${s.maxFlows} flows, ${s.flowsPerSecond.toFixed(2)} flows/s`;
    render();
  } catch (e) {
    document.getElementById("status").textContent = "agent unreachable: " + e.message;
  }
  document.body.dataset.polls = String(Number(document.body.dataset.polls) + 1);
}

document.getElementById("f-text").addEventListener("input", render);
document.getElementById("f-verdict").addEventListener("change", render);
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""#
}
