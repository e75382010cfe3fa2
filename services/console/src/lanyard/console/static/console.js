// Lanyard console: the few live parts. No framework, no build step; served from our origin
// under a CSP that allows no inline script. Every page works without it (forms post normally).
"use strict";

function copyButtons() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
      } catch (_) {
        const range = document.createRange(); range.selectNodeContents(source);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        document.execCommand("copy");
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });
}

function countdown() {
  const el = document.getElementById("countdown");
  if (!el) return;
  const end = Date.parse(el.dataset.expiresAt);
  const tick = () => {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    el.textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "expired";
    if (left === 0) { el.closest(".once")?.classList.add("expired"); return; }
    setTimeout(tick, 1000);
  };
  tick();
}

function cell(text, tag = "td") {
  const c = document.createElement(tag);
  c.textContent = text ?? "—";
  return c;
}

function liveSessions() {
  const table = document.getElementById("sessions");
  if (!table) return;
  const body = table.tBodies[0];
  const status = document.getElementById("live-status");
  const csrf = table.dataset.csrf;
  const closing = new Set();

  async function forceCheckin(handle, row, button) {
    button.disabled = true;
    closing.add(handle);
    row.classList.add("closing");
    row.querySelector(".state").textContent = "checking in…";
    const response = await fetch(`${table.dataset.checkin}${encodeURIComponent(handle)}/force-checkin`, {
      method: "POST", headers: { "X-CSRF-Token": csrf, Accept: "application/json" }, credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) {
      row.classList.replace("closing", "closed");
      row.dataset.state = answer.state;
      row.querySelector(".state").textContent = `${answer.state} (${answer.closed_reason || "checked in"})`;
      status.textContent = `Checked in ${row.querySelector("th").textContent}: the device session and its app sessions are revoked.`;
    } else {
      closing.delete(handle);
      row.classList.remove("closing");
      button.disabled = false;
      status.textContent = answer.error_description || "The checkin was refused.";
    }
  }

  function row(s) {
    const tr = document.createElement("tr");
    tr.dataset.handle = s.device_session_id;
    tr.dataset.state = s.state;
    tr.append(cell(s.username, "th"), cell(s.device_id));
    const state = cell(s.state); state.className = "state"; tr.append(state);
    const activity = cell(s.last_activity); activity.className = "activity";
    tr.append(cell(s.auth_mode), cell(s.checked_out), activity);
    const action = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button"; button.textContent = "Force checkin";
    button.addEventListener("click", () => forceCheckin(s.device_session_id, tr, button));
    action.append(button); tr.append(action);
    return tr;
  }

  // Enhance the server-rendered rows: the buttons check in without leaving the page.
  body.querySelectorAll("form[data-force-checkin]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const tr = form.closest("tr");
      forceCheckin(tr.dataset.handle, tr, form.querySelector("button"));
    });
  });

  async function poll() {
    try {
      const response = await fetch(table.dataset.source, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.redirected || !response.ok) { status.textContent = "Live updates stopped: sign in again."; return; }
      const live = (await response.json()).device_sessions;
      const seen = new Set(live.map((s) => s.device_session_id));
      const focused = document.activeElement;
      body.querySelectorAll("tr[data-handle]").forEach((tr) => {
        if (!seen.has(tr.dataset.handle) && !tr.classList.contains("closed")) tr.remove();
      });
      for (const s of live) {
        const existing = body.querySelector(`tr[data-handle="${CSS.escape(s.device_session_id)}"]`);
        if (existing) {
          if (!closing.has(s.device_session_id)) {
            existing.dataset.state = s.state;
            existing.querySelector(".state").textContent = s.state;
            existing.querySelector(".activity").textContent = s.last_activity;
          }
        } else {
          body.append(row(s));
        }
      }
      body.querySelector("tr.empty")?.remove();
      if (!body.querySelector("tr")) {
        const tr = document.createElement("tr"); tr.className = "empty";
        const td = cell("No device is checked out."); td.colSpan = 7; tr.append(td); body.append(tr);
      }
      if (focused && document.body.contains(focused)) focused.focus();
    } catch (_) {
      status.textContent = "Live updates paused: the console did not answer.";
    }
    setTimeout(poll, Number(table.dataset.pollMs) || 1500);
  }
  setTimeout(poll, Number(table.dataset.pollMs) || 1500);
}

document.addEventListener("DOMContentLoaded", () => {
  copyButtons();
  countdown();
  liveSessions();
});
