// The ffrtmp console's script: poll the console's JSON endpoints (the API's answers) to move
// progress bars and states, and send operator actions after a confirmation. No dependencies.
"use strict";
(function () {
  const FINAL = ["succeeded", "failed", "canceled", "lost"];
  const RETRYABLE = ["failed", "canceled", "lost"];
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  const page = document.body.dataset.page;

  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function duration(s) {
    s = Math.floor(s);
    if (s >= 3600) return Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
    if (s >= 60) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return s + " s";
  }
  function percent(job) {
    if (job.state === "succeeded") return 100;
    const p = job.progress && num(job.progress.percent);
    return p === null || p === undefined ? null : Math.max(0, Math.min(100, p));
  }
  function progressText(job) {
    const p = job.progress || {}, parts = [], pc = percent(job);
    if (pc !== null) parts.push(pc.toFixed(0) + " %");
    if (num(p.fps) !== null) parts.push(p.fps.toFixed(0) + " fps");
    if (num(p.speed) !== null) parts.push(p.speed.toFixed(2) + "x");
    if (num(p.eta_s) !== null && !FINAL.includes(job.state)) parts.push("ETA " + duration(p.eta_s));
    return parts.length ? parts.join(" · ") : "—";
  }
  function flash(text) {
    const box = document.getElementById("flash");
    box.textContent = text;
    box.hidden = !text;
  }
  async function getJson(url) {
    const reply = await fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"});
    if (reply.status === 401) { window.location.assign("/ui/login"); throw new Error("logged out"); }
    const body = await reply.json();
    if (!reply.ok) throw new Error((body.error && body.error.message) || reply.statusText);
    return body;
  }

  function updateJob(scope, job) {
    const state = scope.querySelector("[data-state]");
    if (state) { state.textContent = job.state; state.className = "state state-" + job.state; }
    const bar = scope.querySelector("[data-progress] progress");
    const pc = percent(job);
    if (bar) { if (pc === null) bar.removeAttribute("value"); else bar.value = pc; }
    const text = scope.querySelector("[data-progress] .ptext");
    if (text) text.textContent = progressText(job);
    const cancel = scope.querySelector('[data-action="cancel"]');
    if (cancel) cancel.hidden = FINAL.includes(job.state);
    const retry = scope.querySelector('[data-action="retry"]');
    if (retry) retry.hidden = !RETRYABLE.includes(job.state);
  }

  async function pollJobs() {
    const query = new URLSearchParams();  // the page's filters, the empty ones ("any") left out
    new URLSearchParams(window.location.search).forEach((v, k) => { if (v.trim()) query.set(k, v.trim()); });
    query.set("limit", "100");
    const body = await getJson("/ui/api/jobs?" + query.toString());
    const rows = Array.from(document.querySelectorAll("tr[data-job-id]"));
    const shown = rows.map(r => r.dataset.jobId).join(" ");
    if (shown !== body.jobs.map(j => j.id).join(" ")) { window.location.reload(); return; }
    body.jobs.forEach((job, i) => updateJob(rows[i], job));
  }

  async function pollJob() {
    const scope = document.querySelector("dl.summary");
    const before = scope.querySelector("[data-state]").textContent;
    const body = await getJson("/ui/api/jobs/" + encodeURIComponent(document.body.dataset.jobId));
    if (before !== body.job.state && FINAL.includes(body.job.state)) { window.location.reload(); return; }
    updateJob(scope, body.job);
  }

  async function pollNodes() {
    const body = await getJson("/ui/api/nodes");
    const rows = Array.from(document.querySelectorAll("tr[data-node-id]"));
    if (rows.map(r => r.dataset.nodeId).join(" ") !== body.nodes.map(n => n.id).join(" ")) {
      window.location.reload(); return;
    }
    let changed = false;
    body.nodes.forEach((node, i) => {
      const row = rows[i];
      const status = node.status === "online" && node.draining ? "draining" : String(node.status || "unknown");
      const cell = row.querySelector("[data-status]");
      cell.textContent = status; cell.className = "status status-" + status;
      const slots = row.querySelector("[data-slots]");
      const text = (node.running || 0) + " / " + (node.slots === undefined ? "—" : node.slots);
      if (slots.textContent.trim() !== text) changed = true;
      row.querySelector('[data-action="drain"]').hidden = !!node.draining;
      row.querySelector('[data-action="undrain"]').hidden = !node.draining;
    });
    if (changed) { window.location.reload(); return; }  // running jobs came or went: render afresh
    const bars = document.querySelectorAll("[data-running-job]");
    if (!bars.length) return;
    const running = await getJson("/ui/api/jobs?state=assigned,running&limit=500");
    const byId = new Map(running.jobs.map(j => [j.id, j]));
    bars.forEach(item => { const job = byId.get(item.dataset.runningJob); if (job) updateJob(item, job); });
  }

  async function act(button) {
    if (!window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const reply = await fetch(button.dataset.url, {method: "POST", headers: {"X-Console-CSRF": csrf}});
      const body = await reply.json();
      if (!reply.ok) flash((body.error && body.error.message) || reply.statusText);
      else flash(button.dataset.action + ": done");
      await poll();
    } catch (err) {
      flash(String(err));
    } finally {
      button.disabled = false;
    }
  }

  const pollers = {jobs: [pollJobs, 1000], job: [pollJob, 1000], nodes: [pollNodes, 2000]};
  async function poll() {
    const entry = pollers[page];
    if (!entry) return;
    try {
      await entry[0]();
      document.body.dataset.polled = String(Number(document.body.dataset.polled || 0) + 1);
    } catch (err) { flash("refresh failed: " + err.message); }
  }
  document.addEventListener("click", event => {
    const button = event.target.closest("button[data-action]");
    if (button) { event.preventDefault(); act(button); }
  });
  if (pollers[page]) {
    (async function loop() { await poll(); window.setTimeout(loop, pollers[page][1]); })();
  }
})();
