// The lancam browser view: the live picture, the stream's figures, who is watching
// and a chart of the last minute, refreshed from /state once a second.
// Plain browser JavaScript served as is: no build step, nothing from the internet.
"use strict";
(() => {
  const POLL_MS = 1000;
  const CHART_HEIGHT = 180;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;

  // A token given in the page's address must go with every request the page makes.
  const token = new URLSearchParams(location.search).get("token");
  function url(path, params) {
    const u = new URL(path, location.href);
    u.search = "";
    if (token) u.searchParams.set("token", token);
    for (const [k, v] of Object.entries(params || {})) u.searchParams.set(k, v);
    return u.pathname + u.search;
  }
  const $ = (id) => document.getElementById(id);

  // --- the picture ------------------------------------------------------------
  const img = $("live");
  const pictureStatus = $("picture-status");
  let retryMs = RETRY_MIN_MS;
  let retryTimer = null;

  function openStream() {
    clearTimeout(retryTimer);
    retryTimer = null;
    pictureStatus.textContent = "connecting…";
    // A fresh address each time, so the browser never reuses a dead response.
    img.src = url("stream.mjpg", { t: String(Date.now()) });
  }
  function closeStream() {
    clearTimeout(retryTimer);
    retryTimer = null;
    img.removeAttribute("src");
  }
  img.addEventListener("load", () => {
    retryMs = RETRY_MIN_MS;
    pictureStatus.textContent = "live";
  });
  img.addEventListener("error", () => {
    if (document.hidden || retryTimer) return;
    // Refused (server full) or cut off (server restarting): try again, more slowly each time.
    pictureStatus.textContent = `no picture; trying again in ${Math.round(retryMs / 1000)} s`;
    retryTimer = setTimeout(openStream, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  });
  // A hidden tab gives its place back instead of downloading frames nobody sees.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) closeStream();
    else openStream();
  });

  // --- figures and the viewers table ------------------------------------------
  const num = (x, digits) => (x === null || x === undefined ? "—" : x.toFixed(digits));
  function duration(sec) {
    const s = Math.floor(sec);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const two = (n) => String(n).padStart(2, "0");
    return `${h}:${two(m)}:${two(s % 60)}`;
  }
  const latency = (ms) => (ms === null ? "—" : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`);
  const LABELS = ["address", "name", "kind", "fps", "loss", "latency", "recorded", "picture"];
  /** A paced viewer's layer and path estimate; "—" for a viewer sent the source as everyone is. */
  function picture(v) {
    if (!v.picture) return "—";
    const size = `${v.picture.width}×${v.picture.height}`;
    return v.rateBytesPerS ? `${size} · ${num((v.rateBytesPerS * 8) / 1e6, 1)} Mbit/s` : size;
  }
  /** How each kind of viewer (viewer-info.ts ViewerKind) reads in the table. */
  const KIND_LABELS = { udp: "UDP", classic: "classroom", browser: "browser" };
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    // The phone layout shows each figure with its column's name.
    td.dataset.label = LABELS[row.children.length] || "";
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }
  function renderViewers(viewers) {
    $("viewer-count").textContent = `(${viewers.length})`;
    const body = $("viewers").tBodies[0];
    const rows = viewers.map((v) => {
      const tr = document.createElement("tr");
      tr.dataset.kind = v.kind;
      cell(tr, `${v.address}:${v.port}`);
      cell(tr, v.name || "—", "name").title = v.name;
      const kind = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = `kind ${v.kind}`;
      // TCP delivery: a lancam viewer UDP does not reach gets its frames over its TCP connection.
      badge.textContent = v.transport === "tcp" ? "TCP" : KIND_LABELS[v.kind] || v.kind;
      kind.appendChild(badge);
      if (v.noDatagrams) {
        kind.title = "frames were sent to it by UDP and none arrived: a firewall on its side most likely drops UDP";
        if (v.transport !== "tcp") kind.append(" · none arrives");
      }
      cell(tr, num(v.fps, 1), "num");
      cell(tr, v.lossPercent === null ? "—" : `${v.lossPercent.toFixed(1)} %`, "num");
      cell(tr, latency(v.latencyP50Ms), "num");
      cell(tr, v.framesRecorded === null ? "—" : String(v.framesRecorded), "num");
      cell(tr, picture(v), "num").title = v.framesSkipped ? `${v.framesSkipped} frames skipped for its path` : "";
      return tr;
    });
    body.replaceChildren(...rows);
  }
  function renderFacts(s) {
    $("source").textContent = s.source.description;
    $("size").textContent = `${s.source.width}×${s.source.height}`;
    $("fps").textContent = `${num(s.source.measuredFps, 1)} of ${num(s.source.fps, 0)}`;
    $("bitrate").textContent = `${num(s.source.bitsPerSecond / 1e6, 1)} Mbit/s`;
    $("uptime").textContent = duration(s.uptimeSec);
  }

  // --- the chart ----------------------------------------------------------------
  const chartBox = $("chart");
  let chart = null;
  function chartData(h) {
    return [h.t, h.streamFps, h.slowestViewerFps, h.worstLatencyMs];
  }
  function renderChart(h) {
    if (typeof uPlot !== "function") return;
    if (chart) {
      chart.setData(chartData(h));
      return;
    }
    const axis = { stroke: "#9aa0a6", grid: { stroke: "#2c3136" }, ticks: { stroke: "#2c3136" } };
    chart = new uPlot({
      width: chartBox.clientWidth || 320,
      height: CHART_HEIGHT,
      legend: { live: false },
      series: [
        {},
        { label: "stream fps", scale: "fps", stroke: "#4fc3f7", width: 2 },
        { label: "slowest viewer fps", scale: "fps", stroke: "#81c784", width: 2 },
        { label: "worst latency", scale: "ms", stroke: "#ffb74d", width: 2, value: (u, v) => (v === null ? "—" : `${Math.round(v)} ms`) },
      ],
      scales: {
        fps: { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.15] },
        ms: { range: (u, min, max) => [0, Math.max(max || 0, 10) * 1.15] },
      },
      axes: [
        axis,
        { ...axis, scale: "fps", label: "fps", size: 45 },
        { ...axis, scale: "ms", side: 1, label: "ms", grid: { show: false }, size: 50 },
      ],
    }, chartData(h), chartBox);
    new ResizeObserver(() => chart.setSize({ width: chartBox.clientWidth, height: CHART_HEIGHT })).observe(chartBox);
  }

  // --- polling ------------------------------------------------------------------
  const stateStatus = $("state-status");
  async function poll() {
    try {
      const r = await fetch(url("state"), { cache: "no-store" });
      if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
      const s = await r.json();
      renderFacts(s);
      renderViewers(s.viewers);
      renderChart(s.history);
      stateStatus.textContent = "";
      stateStatus.classList.remove("error");
    } catch (e) {
      stateStatus.textContent = `figures unavailable: ${e.message}`;
      stateStatus.classList.add("error");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  if (!document.hidden) openStream();
  poll();
})();
