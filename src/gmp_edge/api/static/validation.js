"use strict";
// Process validation page: the summary per press CPP (batch table, chart of batch means
// against the validated range) and the equipment qualification table. Loaded as a file so
// the page's CSP can forbid inline scripts; everything shown from the API is escaped.
const $ = id => document.getElementById(id);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c]));
const num = (v, d = 2) => v === null || v === undefined ? "—" : (Math.abs(v) >= 10000 ? Math.round(v).toLocaleString("en-US") : Number(v).toFixed(d));
const slug = s => String(s).replace(/[^a-z]+/g, "-");
let session = null;

async function api(path) {
  const r = await fetch(path, {credentials: "same-origin"});
  if (r.status === 401) { showSignin(); throw new Error("401"); }
  return r;
}
function showSignin() { $("content").classList.add("hidden"); $("signin").classList.remove("hidden"); }
function detail(body) { return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); }

wireSignin(start);  // signin.js

async function start(s) {
  session = s;
  $("signin").classList.add("hidden"); $("content").classList.remove("hidden");
  $("who").textContent = `${s.full_name} (${s.role})`;
  const r = await api("/api/batches");
  if (r.ok) {
    const products = [...new Set((await r.json()).map(b => b.product).filter(p => p))].sort();
    $("product").innerHTML = `<option value="">all products</option>` + products.map(p => `<option value="${esc(p)}">${esc(p)}</option>`).join("");
    const want = new URLSearchParams(location.search).get("product");
    if (want !== null && products.includes(want)) $("product").value = want;
  }
  summarise();
  equipment();
}

function query() {
  const q = new URLSearchParams();
  if ($("product").value) q.set("product", $("product").value);
  if ($("start").value) q.set("start", `${$("start").value}T00:00:00Z`);
  if ($("end").value) q.set("end", new Date(Date.parse(`${$("end").value}T00:00:00Z`) + 86400000).toISOString());
  q.set("cpk_target", $("cpk_target").value || "1.33");
  q.set("min_batches", $("min_batches").value || "3");
  return q.toString();
}

$("filter").addEventListener("submit", ev => { ev.preventDefault(); summarise(); });

async function summarise() {
  $("error").textContent = "";
  const r = await api(`/api/process-validation?${query()}`);
  const body = await r.json();
  if (!r.ok) { $("error").textContent = detail(body); $("cpps").innerHTML = ""; return; }
  $("text").textContent = body.text;
  const p = body.policy;
  $("meta").textContent = `Batches: ${body.batches.map(b => b.id).join(", ") || "none"} · period ${body.period.start || "all history"} → ${body.period.end || "now"} · ` +
    `Cpk target ${num(p.cpk_target)}, minimum ${num(p.cpk_minimum)}, ${p.min_batches} batches needed, drift after ${p.trend_run} rising/falling means · compiled ${body.compiled}` +
    (body.notes.length ? " · " + body.notes.join("; ") : "");
  $("excluded").innerHTML = body.excluded.map(e => `<li>${esc(e.batch_id)} (${esc(e.product)}) left out: ${esc(e.reason)}</li>`).join("");
  $("cpps").innerHTML = body.cpps.map((c, i) => cpp(c, i, p)).join("");
}

function cpkClass(v, p) { return v === null || v === undefined ? "" : v < p.cpk_minimum ? "low" : v < p.cpk_target ? "marginal" : ""; }

function cpp(c, i, p) {
  const o = c.overall, t = c.trend;
  const rows = c.batches.map(b => {
    const cap = b.capability || {};
    return `<tr class="batchrow" data-batch="${esc(b.batch_id)}"><td>${esc(b.batch_id)}</td><td>${esc(b.start)}</td>
      <td class="num">${b.n}</td><td class="num">${num(b.mean, 3)}</td><td class="num">${num(b.std, 3)}</td><td class="num">${num(b.min, 3)}</td><td class="num">${num(b.max, 3)}</td>
      <td class="num">${num(cap.cp)}</td><td class="num cpk ${cpkClass(cap.cpk, p)}">${num(cap.cpk)}</td><td class="num">${num(cap.pp)}</td><td class="num ${cpkClass(cap.ppk, p)}">${num(cap.ppk)}</td>
      <td class="num">${b.excursions}${b.action_excursions ? ` (${b.action_excursions} action)` : ""}</td>
      <td>${b.deviations.map(d => `${esc(d.id)} ${esc(d.status)} (${esc(d.classification)})`).join("<br>") || "—"}</td>
      <td class="msg">${esc(b.limit_set || "")}${b.note ? " " + esc(b.note) : ""}</td></tr>`;
  }).join("");
  const range = c.lsl === null && c.usl === null ? "no validated range" : `validated range ${num(c.lsl)} to ${num(c.usl)} ${esc(c.unit)} (${esc(c.limit_set)})`;
  // a CPP without a validated range has no verdict to read: folded, open on a click
  const open = c.lsl !== null || c.usl !== null ? " open" : "";
  return `<section class="cpp" data-tag="${esc(c.tag)}" data-verdict="${esc(c.verdict)}"><details${open}>
    <summary><h2>${esc(c.signal.replace(/_/g, " "))} <span class="msg">${esc(c.equipment)} · ${esc(c.tag)}</span>
      <span class="verdict v-${slug(c.verdict)}">${esc(c.verdict)}</span></h2></summary>
    <p>${esc(c.text)}</p>
    <div class="msg">${range} · pooled over ${o.n} Good values: mean ${num(o.mean, 3)}, Cp ${num(o.cp)}, Cpk ${num(o.cpk)}, Pp ${num(o.pp)}, Ppk ${num(o.ppk)} ·
      ${c.below_target} batch(es) with Cpk below ${num(p.cpk_target)}, ${c.below_minimum} below ${num(p.cpk_minimum)}${c.notes.length ? " · " + esc(c.notes.join("; ")) : ""}</div>
    ${chart(c, p)}
    <table><thead><tr><th>Batch</th><th>Start (UTC)</th><th class="num">n</th><th class="num">Mean</th><th class="num">Std</th><th class="num">Min</th><th class="num">Max</th>
      <th class="num">Cp</th><th class="num">Cpk</th><th class="num">Pp</th><th class="num">Ppk</th><th class="num">Excursions</th><th>Deviations</th><th>Range / note</th></tr></thead>
      <tbody>${rows}</tbody></table></details></section>`;
}

// Batch means (dots) with min-max whiskers, the validated range (red dashed), the pooled
// mean (grey) and the least-squares line through the means (blue dotted) when there is one.
function chart(c, p) {
  const pts = c.batches.map((b, i) => ({b, i})).filter(x => x.b.n > 0 && x.b.mean !== null);
  if (!pts.length) return `<div class="msg">No Good data to chart.</div>`;
  const W = 1000, H = 220, left = 70, right = 20, top = 14, bottom = 36;
  const vals = pts.flatMap(x => [x.b.min, x.b.max]);
  for (const v of [c.lsl, c.usl]) if (v !== null) vals.push(v);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const m = (hi - lo) * 0.08; lo -= m; hi += m;
  const n = c.batches.length, step = (W - left - right) / Math.max(1, n);
  const X = i => left + step * (i + 0.5), Y = v => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
  let svg = "";
  for (const [k, v] of [["lsl", c.lsl], ["usl", c.usl]]) {
    if (v === null) continue;
    svg += `<line class="limit ${k}" x1="${left}" x2="${W - right}" y1="${Y(v)}" y2="${Y(v)}" stroke="#c62828" stroke-dasharray="6 4"/>` +
      `<text x="${left - 4}" y="${Y(v) + 4}" text-anchor="end">${esc(k.toUpperCase())} ${esc(num(v))}</text>`;
  }
  if (c.overall.mean !== null) svg += `<line class="grand-mean" x1="${left}" x2="${W - right}" y1="${Y(c.overall.mean)}" y2="${Y(c.overall.mean)}" stroke="#90a4ae"/>`;
  const t = c.trend;
  if (t.slope_per_batch !== null && pts.length >= 3) {
    const ys = pts.map(x => x.b.mean), k = ys.length, ybar = ys.reduce((a, b) => a + b, 0) / k, xbar = (k - 1) / 2;
    const fit = j => ybar + t.slope_per_batch * (j - xbar);
    svg += `<line class="fit" x1="${X(pts[0].i)}" x2="${X(pts[k - 1].i)}" y1="${Y(fit(0))}" y2="${Y(fit(k - 1))}" stroke="#1565c0" stroke-dasharray="2 3"/>`;
  }
  const every = Math.ceil(n / 20);
  for (const {b, i} of pts) {
    const cpk = b.capability ? b.capability.cpk : null;
    const colour = cpk === null ? "#607d8b" : cpk < p.cpk_minimum ? "#c62828" : cpk < p.cpk_target ? "#ef6c00" : "#1565c0";
    svg += `<line x1="${X(i)}" x2="${X(i)}" y1="${Y(b.min)}" y2="${Y(b.max)}" stroke="${colour}" stroke-width="1.5"/>` +
      `<circle class="mean" data-batch="${esc(b.batch_id)}" cx="${X(i)}" cy="${Y(b.mean)}" r="4" fill="${colour}"><title>${esc(b.batch_id)}: mean ${esc(num(b.mean, 3))}, Cpk ${esc(num(cpk))}</title></circle>`;
  }
  c.batches.forEach((b, i) => { if (i % every === 0) svg += `<text x="${X(i)}" y="${H - bottom + 16}" text-anchor="middle">${esc(b.batch_id)}</text>`; });
  // axis ends, unless a limit's label sits there already
  const near = y => [c.lsl, c.usl].some(v => v !== null && Math.abs(Y(v) - y) < 14);
  if (!near(top)) svg += `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${esc(num(hi))}</text>`;
  if (!near(H - bottom)) svg += `<text x="${left - 4}" y="${H - bottom}" text-anchor="end">${esc(num(lo))}</text>`;
  svg += `<text x="${W - right}" y="${H - 4}" text-anchor="end">${esc(c.unit)} · dot: batch mean (red: Cpk below ${esc(num(p.cpk_minimum))}, orange: below ${esc(num(p.cpk_target))}), bar: min–max, dashed red: validated range, grey: pooled mean, dotted blue: least-squares line</text>`;
  return `<svg class="means" viewBox="0 0 ${W} ${H}" role="img" aria-label="batch means of ${esc(c.signal)}">${svg}</svg>`;
}

async function equipment() {
  const r = await api("/api/equipment");
  if (!r.ok) { $("equipment").innerHTML = `<tr><td colspan="9" class="error">${esc(detail(await r.json()))}</td></tr>`; return; }
  const days = d => d === null ? "" : d >= 0 ? ` (${d} d left)` : ` (${-d} d ago)`;
  const cls = s => s === "qualified" || s === "in_date" ? "ok" : s === "not_recorded" ? "" : "lapsed";
  $("equipment").innerHTML = (await r.json()).map(e => `<tr class="eqrow" data-equipment="${esc(e.id)}">
    <td>${esc(e.id)}${e.name ? `<div class="msg">${esc(e.name)}</div>` : ""}</td><td>${esc(e.kind)}</td><td>${esc(e.room)}</td>
    <td>${esc(e.qualified_until || "—")}</td><td class="qualification ${cls(e.qualification_status)}">${esc(e.qualification_status.replace(/_/g, " "))}${esc(days(e.qualification_days_remaining))}</td>
    <td>${esc(e.calibration_due || "—")}</td><td class="calibration ${cls(e.calibration_status)}">${esc(e.calibration_status.replace(/_/g, " "))}${esc(days(e.calibration_days_remaining))}</td>
    <td class="num">${e.batches_used}</td>
    <td>${e.out_of_status.map(u => `<span class="lapsed">${esc(u.batch_id)}</span> <span class="msg">${esc(u.reason)}</span>`).join("<br>") || "none"}</td></tr>`).join("");
}

fetch("/api/session", {credentials: "same-origin"}).then(async r => { if (r.ok) start(await r.json()); else showSignin(); });
