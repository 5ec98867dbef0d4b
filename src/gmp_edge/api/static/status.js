const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
let units = {};
function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") {
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2);
  }
  return esc(v);
}
let session = null, timer = null;
const $ = id => document.getElementById(id);
async function api(path, opts = {}) {
  opts.headers = Object.assign({"Content-Type": "application/json"}, opts.headers || {});
  if (session && opts.method && opts.method !== "GET") opts.headers["X-CSRF-Token"] = session.csrf_token;
  const r = await fetch(path, Object.assign({credentials: "same-origin"}, opts));
  if (r.status === 401) { signedOut("Signed out (session expired or not signed in)."); throw new Error("401"); }
  return r;
}
// the 2-second refresh is the page's, not the person's: it must not keep an unattended
// session alive, so the server leaves the idle timeout running for these reads
const poll = path => api(path, {headers: {"X-Background-Refresh": "1"}});
function signedOut(message) {
  session = null; if (timer) { clearInterval(timer); timer = null; }
  $("live").classList.add("hidden"); $("signin").classList.remove("hidden");
  $("who").textContent = ""; $("signin-error").textContent = message || "";
  $("overall").textContent = "signed out"; $("overall").className = "starting";
}
function signedIn(s) {
  session = s;
  if (s.password_expired) {
    $("signin-title").textContent = "Your password must be changed";
    $("newpw-fields").classList.remove("hidden"); $("user_id").value = s.user_id;
    $("signin-button").textContent = "Change password"; return;
  }
  $("signin").classList.add("hidden"); $("live").classList.remove("hidden");
  $("who").innerHTML = `${esc(s.full_name)} (${esc(s.role)})<button id="signout">Sign out</button>`;
  $("signout").onclick = async () => { await api("/api/session", {method: "DELETE"}).catch(() => {}); signedOut("Signed out."); };
  refresh(); timer = setInterval(refresh, 2000);
}
$("signin-form").onsubmit = async ev => {
  ev.preventDefault(); $("signin-error").textContent = "";
  if (session && session.password_expired) {
    const r = await api("/api/session/password", {method: "POST", body: JSON.stringify(
      {current_password: $("password").value, new_password: $("new_password").value})});
    if (!r.ok) { $("signin-error").textContent = (await r.json()).detail; return; }
    $("newpw-fields").classList.add("hidden"); $("signin-button").textContent = "Sign in";
    $("signin-title").textContent = "Sign in"; session.password_expired = false;
    $("password").value = ""; $("new_password").value = ""; signedIn(session); return;
  }
  const r = await fetch("/api/session", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({user_id: $("user_id").value, password: $("password").value})});
  $("password").value = "";
  const body = await r.json();
  if (!r.ok) {
    $("signin-error").textContent = typeof body.detail === "string" ? body.detail : "check user ID and password";
    return;
  }
  signedIn(body);
};
const ORDER = ["unacknowledged", "rtn_unacknowledged", "acknowledged", "shelved", "out_of_service", "suppressed_by_design"];
function roomBadge(r) {
  if (!r.alarms.length) return `<span class="badge b-normal" data-alarm-state="normal">no alarms</span>`;
  const worst = ORDER.find(s => r.alarms.some(a => a.state === s)) || r.alarms[0].state;
  return `<span class="badge b-${esc(worst)}" data-alarm-state="${esc(worst)}">${r.alarms.length} alarm${r.alarms.length > 1 ? "s" : ""}</span>`;
}
async function refresh() {
  try {
    if (!Object.keys(units).length) {
      for (const t of await (await poll("/api/tags")).json()) units[t.path] = t.unit;
    }
    const [health, rooms, devs] = await Promise.all([
      poll("/api/health").then(r => r.json()), poll("/api/status/rooms").then(r => r.json()),
      poll("/api/deviations").then(r => r.json())]);
    const open = devs.filter(d => d.status === "open" || d.status === "under_investigation");
    $("devsrows").innerHTML = open.map(d => `<tr class="deviation" data-deviation="${esc(d.id)}">
      <td>${esc(d.id)}</td><td>${esc(d.title)}</td>
      <td class="c-${esc(d.proposed_classification)}">${esc(d.proposed_classification)}</td>
      <td>${esc(d.status.replace("_", " "))}</td><td>${esc(d.batches.join(", ") || "—")}</td>
      <td>${esc(d.report_due)}</td></tr>`).join("") || `<tr><td colspan="6">none</td></tr>`;
    $("site").textContent = "site " + health.site;
    const o = $("overall");
    o.textContent = health.status; o.className = health.status;
    o.title = health.reasons.map(x => x.text).join("\n");
    const rs = $("reasons");
    rs.innerHTML = health.reasons.map(x =>
      `<li class="r-${esc(x.severity)}" data-reason="${esc(x.code)}">${esc(x.text)}</li>`).join("");
    rs.className = health.reasons.length ? "" : "hidden";
    const al = health.alarms, s = $("alarmsum");
    s.textContent = al.active ? `${al.active} alarm${al.active > 1 ? "s" : ""}` +
      (al.unacknowledged ? `, ${al.unacknowledged} unacknowledged` : "") : "no alarms";
    s.className = "badge " + (al.unacknowledged ? "b-unacknowledged" : al.active ? "b-acknowledged" : "b-normal");
    $("clock").textContent = health.now;
    $("rooms").innerHTML = rooms.map(r => `
      <section class="room" data-room="${esc(r.room.id)}"><h2>${esc(r.room.name || r.room.id)}
        <span class="grade">${r.room.grade ? "Grade " + esc(r.room.grade) : ""}
        ${r.room.iso_class ? "ISO " + esc(r.room.iso_class) : ""}</span>
        ${roomBadge(r)}
        <span class="state">${r.production_state ? esc(r.production_state.replace("_", " ")) : ""}
        ${r.batch ? " · batch " + esc(r.batch) : ""}</span></h2>
        ${r.alarms.length ? `<table class="alarms">${r.alarms.map(a => `<tr class="alarm" data-alarm="${esc(a.id)}">
          <td class="p-${esc(a.priority)}">${esc(a.priority)}</td><td>${esc(a.kind.replace("_", " "))}</td>
          <td>${esc(a.tag.split("/").slice(3).join(" / "))}</td><td><span class="badge b-${esc(a.state)}">${esc(a.state.replace("_", " "))}</span></td>
          <td>${esc((a.raised || "").slice(11, 19))}Z</td></tr>`).join("")}</table>` : ""}
        <table>${r.values.map(v => `<tr class="reading" data-tag="${esc(v.tag)}">
          <td>${esc(v.tag.split("/").slice(3).join(" / "))}</td>
          <td class="v q-${v.quality}">${fmt(v.value)} ${esc(units[v.tag] || "")}</td>
          <td class="q-${v.quality}">${v.quality}</td><td>${esc(v.ts.slice(11, 19))}Z</td></tr>
          ${v.message ? `<tr><td colspan="4" class="msg">${esc(v.message)}</td></tr>` : ""}`).join("")
        || `<tr><td>${r.tags ? "no values yet" : "no tags configured"}</td></tr>`}</table></section>`).join("");
    $("devrows").innerHTML = health.devices.map(d => `
      <tr class="device" data-device="${esc(d.id)}"><td>${esc(d.id)}</td><td>${esc(d.endpoint)}</td>
      <td class="${d.state === "connected" ? "q-good" : "q-bad"}">${esc(d.state)}</td>
      <td>${esc(d.last_good || "—")}</td><td>${d.lag_s ?? "—"}</td>
      <td class="msg">${esc(d.last_error || "")}</td></tr>`).join("");
  } catch (e) {
    if (e.message === "401") return;
    const o = $("overall");
    o.textContent = "service unreachable"; o.className = "degraded";
  }
}
// a session from earlier (cookie) carries on; otherwise ask to sign in
fetch("/api/session", {credentials: "same-origin"}).then(async r => {
  if (r.ok) signedIn(await r.json()); else signedOut("");
}).catch(() => signedOut("service unreachable"));
