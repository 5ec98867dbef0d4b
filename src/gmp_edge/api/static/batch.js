const $ = id => document.getElementById(id);
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const num = v => v === null || v === undefined ? "—" : (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : Number(v).toFixed(2));
let session = null, current = null;
async function api(path, opts = {}) {
  opts.headers = Object.assign({"Content-Type": "application/json"}, opts.headers || {});
  if (session && opts.method && opts.method !== "GET") opts.headers["X-CSRF-Token"] = session.csrf_token;
  const r = await fetch(path, Object.assign({credentials: "same-origin"}, opts));
  if (r.status === 401 && !path.endsWith("/decision")) { showSignin(); throw new Error("401"); }
  return r;
}
function showSignin() { $("review").classList.add("hidden"); $("signin").classList.remove("hidden"); }
wireSignin(start);  // signin.js
async function start(s) {
  session = s; $("signin").classList.add("hidden");
  $("who").textContent = `${s.full_name} (${s.role})`; $("sig_user").value = s.user_id;
  const batches = await (await api("/api/batches")).json();
  $("batches").innerHTML = batches.map(b => `<option value="${esc(b.id)}">${esc(b.id)} — ${esc(b.product)}</option>`).join("");
  const want = new URLSearchParams(location.search).get("id");
  if (want) $("batches").value = want;
  $("batches").onchange = () => load($("batches").value);
  if ($("batches").value) load($("batches").value);
}
async function load(id) {
  const r = await api(`/api/batches/${encodeURIComponent(id)}/review?traces=true`);
  if (!r.ok) return;
  current = await r.json();
  const rv = current.review, b = rv.batch, rd = rv.readiness;
  $("review").classList.remove("hidden");
  $("title").textContent = `Batch ${b.id} — ${b.product}`;
  const bid = encodeURIComponent(b.id);
  $("report-link").href = `/api/batches/${bid}/report.pdf`;
  $("evidence-link").href = `/api/batches/${bid}/evidence.zip`;
  $("readings-link").href = `/api/batches/${bid}/readings.csv`;
  $("excursions-link").href = `/api/excursions?batch=${bid}&format=csv`;
  $("meta").textContent = `${b.start} → ${b.end || "running"} · rooms ${b.rooms.join(", ")} · equipment ${b.equipment.join(", ") || "—"} · ` +
    `config ${[...new Set(rv.config_versions.map(c => (c.config_sha256 || "").slice(0, 12)))].join(", ")} · limit sets ${rv.limit_sets.map(l => l.set_id + " v" + l.version).join(", ")}`;
  $("recommendation").textContent = "Recommendation: " + rd.recommendation;
  $("recommendation").className = "rec rec-" + rd.recommendation;
  $("rec-text").textContent = rd.text;
  $("blockers").innerHTML = rd.blockers.map(f => `<li class="blocker" data-code="${esc(f.code)}">${esc(f.message)}</li>`).join("") || "<li>none</li>";
  $("warnings").innerHTML = rd.warnings.map(f => `<li class="warning" data-code="${esc(f.code)}">${esc(f.message)}</li>`).join("") || "<li>none</li>";
  $("tags").innerHTML = rv.tags.map((t, i) => `<tr class="tagrow" data-i="${i}" data-tag="${esc(t.tag)}">
    <td>${esc(t.tag.split("/").slice(3).join(" / "))}</td>
    <td class="${t.completeness_pct !== null && t.completeness_pct < 95 ? "low" : ""}">${t.completeness_pct === null ? "—" : t.completeness_pct.toFixed(1) + " %"}</td>
    <td>${t.gaps.length}</td><td>${num(t.stats.min)}</td><td>${num(t.stats.mean)}</td><td>${num(t.stats.max)}</td>
    <td>${t.excursions.length}</td><td>${t.capability && t.capability.cpk !== null ? t.capability.cpk.toFixed(2) : "—"}</td></tr>`).join("");
  document.querySelectorAll("tr.tagrow").forEach(tr => tr.onclick = () => chart(+tr.dataset.i));
  $("deviations").innerHTML = rv.deviations.map(d => `<tr data-deviation="${esc(d.id)}"><td>${esc(d.id)}</td><td>${esc(d.title)}</td>
    <td>${esc(d.status)}</td><td>${esc(d.classification || d.proposed_classification || "")}</td>
    <td><a class="devfile" href="/api/deviations/${encodeURIComponent(d.id)}/report.pdf">investigation file (PDF)</a></td></tr>`).join("") || "<tr><td>none linked</td></tr>";
  $("equipment").innerHTML = rv.equipment.map(e => `<tr><td>${esc(e.id)}</td><td class="${e.flagged ? "blocker" : ""}">qualification ${esc(e.qualification_status)}, calibration ${esc(e.calibration_status)}${e.reason ? " — " + esc(e.reason) : ""}</td></tr>`).join("") || "<tr><td>none</td></tr>";
  $("decisions").innerHTML = current.decisions.map(d => `<p class="decision" data-decision="${esc(d.decision)}">${esc(d.id)}: <b>${esc(d.decision)}</b> — ${esc(d.comment)}<br>
    ${d.signatures.signatures.map(s => `<span class="msg">signed by ${esc(s.printed_name)} (${esc(s.signer)}), ${esc(s.meaning)}, ${esc(s.signed_at)} — ${s.valid ? "valid" : "NO LONGER VALID"}</span>`).join("<br>")}</p>`).join("");
  const first = rv.tags.findIndex(t => t.excursions.length) ;
  chart(first >= 0 ? first : 0);
}
function chart(i) {
  const t = current.review.tags[i]; if (!t || !t.trace) { $("chart").innerHTML = ""; return; }
  document.querySelectorAll("tr.tagrow").forEach(tr => tr.classList.toggle("sel", +tr.dataset.i === i));
  $("chart-tag").textContent = `${t.tag} (${t.unit})`;
  const tr = t.trace, xs = tr.start_us, p = current.review.period;
  const t0 = p.start_us, t1 = p.end_us, W = 1000, H = 240, pad = 20;
  const vals = [...tr.min, ...tr.max].filter(v => v !== null);
  for (const l of t.limits) for (const k of ["alert_high", "action_high", "alert_low", "action_low"]) if (l[k] !== null && l[k] !== undefined) vals.push(l[k]);
  let lo = Math.min(...vals), hi = Math.max(...vals); if (!(hi > lo)) { hi = lo + 1; }
  const m = (hi - lo) * 0.08; lo -= m; hi += m;
  const X = us => ((us - t0) / Math.max(1, t1 - t0)) * W, Y = v => pad + (1 - (v - lo) / (hi - lo)) * (H - pad);
  let svg = "";
  for (const g of t.gaps) svg += `<rect class="gap" x="${X(g.start_us)}" y="${pad}" width="${Math.max(2, X(g.end_us || t1) - X(g.start_us))}" height="${H - pad}" fill="#ccc" opacity="0.6"/>`;
  for (const e of t.excursions) svg += `<rect class="excursion" x="${X(e.start_us)}" y="${pad}" width="${Math.max(2, X(e.end_us || t1) - X(e.start_us))}" height="${H - pad}" fill="${e.level === "action" ? "#ffcdd2" : "#ffe0b2"}" opacity="0.7"/>`;
  let band = "", top = [], bot = [], mean = [];
  xs.forEach((x, j) => { if (tr.max[j] !== null) { top.push(`${X(x)},${Y(tr.max[j])}`); bot.unshift(`${X(x)},${Y(tr.min[j])}`); mean.push(`${X(x)},${Y(tr.mean[j])}`); } });
  if (top.length) svg += `<polygon points="${top.concat(bot).join(" ")}" fill="#90caf9" opacity="0.5"/><polyline class="mean" points="${mean.join(" ")}" fill="none" stroke="#1565c0" stroke-width="1.5"/>`;
  for (const l of t.limits) for (const [k, c] of [["action_high", "#c62828"], ["action_low", "#c62828"], ["alert_high", "#ef6c00"], ["alert_low", "#ef6c00"]]) {
    if (l[k] === null || l[k] === undefined) continue;
    svg += `<line class="limit ${k}" x1="${X(Math.max(t0, l.from_us))}" x2="${X(l.to_us || t1)}" y1="${Y(l[k])}" y2="${Y(l[k])}" stroke="${c}" stroke-dasharray="6 4"/><text x="4" y="${Y(l[k]) - 2}">${esc(k.replace("_", " "))} ${num(l[k])}</text>`;
  }
  svg += `<text x="4" y="12">${esc(num(hi))} ${esc(t.unit)}</text><text x="4" y="${H}">${esc(num(lo))}</text>`;
  $("chart").innerHTML = svg;
}
$("decision-form").onsubmit = async ev => {
  ev.preventDefault(); $("decision-error").textContent = "";
  const id = $("batches").value;
  const r = await api(`/api/batches/${encodeURIComponent(id)}/decision`, {method: "POST", body: JSON.stringify({
    decision: $("decision").value, comment: $("comment").value, review_sha256: current.review_sha256,
    user_id: $("sig_user").value, password: $("sig_password").value})});
  $("sig_password").value = "";
  if (!r.ok) { const b = await r.json(); $("decision-error").textContent = typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail); return; }
  load(id);
};
fetch("/api/session", {credentials: "same-origin"}).then(async r => { if (r.ok) start(await r.json()); else showSignin(); });
