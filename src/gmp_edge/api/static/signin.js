"use strict";
// The sign-in form of the batch review and process validation pages: posts the credentials
// to /api/session and hands the session to the page's start(). A file loaded before the
// page's own script, so the CSP can forbid inline scripts; it declares only this function
// (the pages keep their own helpers).
function wireSignin(start) {
  const $ = id => document.getElementById(id);
  $("signin-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const r = await fetch("/api/session", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user_id: $("user_id").value, password: $("password").value})});
    $("password").value = "";
    const body = await r.json();
    if (!r.ok) { $("signin-error").textContent = typeof body.detail === "string" ? body.detail : "check user ID and password"; return; }
    start(body);
  });
}
