// The lancam browser view: the live picture, the stream's figures, who is watching
// and a chart of the last minute, refreshed from /state once a second. With several
// cameras: every camera's picture, each a link to its own page (/?camera=N).
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

  // --- which cameras ------------------------------------------------------------
  // The server writes the cameras' names (index = number) and the one the address asked
  // for into <body>, so the pictures open before the first /state.
  const cameras = JSON.parse(document.body.dataset.cameras || '["0"]');
  const several = cameras.length > 1;
  const asked = document.body.dataset.camera;
  /** The camera this page shows alone, or null for every camera's picture. */
  const shown = asked !== undefined ? Number(asked) : several ? null : 0;
  /** A camera's stream address parameters: none with one camera, as before there were several. */
  const cameraParams = (i) => (several ? { camera: String(i) } : {});

  // --- the pictures -------------------------------------------------------------
  /** One live picture: its stream, opened again (more slowly each time) when it fails; `status` says how it goes. */
  function livePicture(img, status, camera) {
    let retryMs = RETRY_MIN_MS;
    let retryTimer = null;
    function open() {
      clearTimeout(retryTimer);
      retryTimer = null;
      status.textContent = "connecting…";
      // A fresh address each time, so the browser never reuses a dead response.
      img.src = url("stream.mjpg", { ...cameraParams(camera), t: String(Date.now()) });
    }
    function close() {
      clearTimeout(retryTimer);
      retryTimer = null;
      img.removeAttribute("src");
    }
    img.addEventListener("load", () => {
      retryMs = RETRY_MIN_MS;
      status.textContent = "live";
    });
    img.addEventListener("error", () => {
      if (document.hidden || retryTimer) return;
      // Refused (server full) or cut off (server restarting): try again, more slowly each time.
      status.textContent = `no picture; trying again in ${Math.round(retryMs / 1000)} s`;
      retryTimer = setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
    return { open, close };
  }

  /** Camera `i` among all of them: its picture and caption, both links to its own page. */
  function cameraTile(i) {
    const href = url("./", { camera: String(i) });
    const figure = document.createElement("figure");
    figure.className = "camera";
    figure.dataset.camera = String(i);
    const link = document.createElement("a");
    link.href = href;
    const img = document.createElement("img");
    img.className = "live";
    img.alt = `camera ${cameras[i]}`;
    link.appendChild(img);
    const caption = document.createElement("figcaption");
    const name = document.createElement("a");
    name.className = "camera-name";
    name.href = href;
    name.textContent = cameras[i];
    const size = document.createElement("span");
    size.className = "size";
    const badge = document.createElement("span");
    badge.className = "badge unavailable";
    badge.textContent = "unavailable";
    badge.hidden = true;
    const status = document.createElement("span");
    status.className = "picture-status";
    caption.append(name, size, badge, status);
    figure.append(link, caption);
    return { figure, size, badge, picture: livePicture(img, status, i) };
  }

  const tiles = shown === null ? cameras.map((_, i) => cameraTile(i)) : [];
  const pictures = tiles.map((t) => t.picture);
  if (shown === null) {
    $("picture").hidden = true;
    $("cameras").hidden = false;
    $("cameras").append(...tiles.map((t) => t.figure));
    // Every camera at once: one figure for all of them, the size and fps are each camera's own.
    $("source-label").textContent = "cameras";
    $("size").parentElement.hidden = true;
    $("fps").parentElement.hidden = true;
  } else {
    pictures.push(livePicture($("live"), $("picture-status"), shown));
    if (several) {
      $("camera-fact").hidden = false;
      $("camera").textContent = cameras[shown];
      $("all-cameras").href = url("./");
      $("all-cameras").hidden = false;
      document.title = `lancam · ${cameras[shown]}`;
    }
  }
  // A hidden tab gives its places back instead of downloading frames nobody sees.
  document.addEventListener("visibilitychange", () => {
    for (const p of pictures) {
      if (document.hidden) p.close();
      else p.open();
    }
  });

  // --- the sound -----------------------------------------------------------------
  // A camera with audio gets a speaker button: browsers start sound only after a gesture,
  // and the click is that gesture. The <audio> element plays the live Ogg Opus stream; the
  // page keeps it near live, since a media element would otherwise let its buffer grow.
  // Chromium takes the stream in blocks, so what it holds ahead rises and falls between
  // blocks: the least it held over the last two seconds is the surplus to play away.
  /** Held ahead of what plays by more than this all the while, s: play a little faster. */
  const SOUND_LEAD_S = 0.3;
  /** Caught up: back to normal speed. */
  const SOUND_CAUGHT_UP_S = 0.1;
  /** So far behind that catching up would take long: open the stream again at its live edge. */
  const SOUND_REOPEN_S = 2;
  const SOUND_CATCH_UP_RATE = 1.25;
  /** Far behind (a second or more, as when the stream starts): catch up faster. */
  const SOUND_FAR_S = 1;
  const SOUND_FAR_RATE = 1.5;
  const SOUND_CHECK_MS = 250;
  /** Checks the surplus is the least of: two seconds. */
  const SOUND_WINDOW = 8;
  function liveSound(audio, button, status, camera) {
    let on = false;
    let timer = null;
    let retryTimer = null;
    let retryMs = RETRY_MIN_MS;
    let leads = [];
    /** Seconds of sound the element holds beyond what it plays now. */
    function lead() {
      const b = audio.buffered;
      return b.length ? Math.max(0, b.end(b.length - 1) - audio.currentTime) : 0;
    }
    function open() {
      clearTimeout(retryTimer);
      retryTimer = null;
      setRate(1);
      leads = [];
      audio.src = url("audio.ogg", { ...cameraParams(camera), t: String(Date.now()) });
      audio.play().catch((e) => {
        if (on) status.textContent = `cannot play: ${e.message}`;
      });
    }
    // Set only when it changes: Chromium holds back a stream that has not started yet while its rate is being set.
    function setRate(rate) {
      if (audio.playbackRate !== rate) audio.playbackRate = rate;
    }
    function keepLive() {
      // Nothing to judge before the element has sound to play.
      if (!on || audio.paused || audio.readyState < 2) return;
      leads.push(lead());
      if (leads.length > SOUND_WINDOW) leads.shift();
      const surplus = Math.min(...leads);
      if (leads.length === SOUND_WINDOW && surplus > SOUND_REOPEN_S) {
        open();
        return;
      }
      if (surplus > SOUND_FAR_S) setRate(SOUND_FAR_RATE);
      else if (surplus > SOUND_LEAD_S) setRate(SOUND_CATCH_UP_RATE);
      else if (surplus < SOUND_CAUGHT_UP_S) setRate(1);
      status.textContent = `${Math.round(Math.max(...leads) * 1000)} ms buffered`;
    }
    function start() {
      on = true;
      button.setAttribute("aria-pressed", "true");
      button.textContent = "🔊 sound on";
      status.textContent = "connecting…";
      open();
      timer = setInterval(keepLive, SOUND_CHECK_MS);
    }
    function stop() {
      if (!on) return;
      on = false;
      clearInterval(timer);
      clearTimeout(retryTimer);
      timer = retryTimer = null;
      button.setAttribute("aria-pressed", "false");
      button.textContent = "🔈 sound";
      status.textContent = "";
      audio.pause();
      // Without a source the element lets its connection go.
      audio.removeAttribute("src");
      audio.load();
    }
    audio.addEventListener("playing", () => {
      retryMs = RETRY_MIN_MS;
    });
    audio.addEventListener("error", () => {
      if (!on || retryTimer) return;
      status.textContent = `no sound; trying again in ${Math.round(retryMs / 1000)} s`;
      retryTimer = setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
    button.addEventListener("click", () => (on ? stop() : start()));
    return { stop };
  }
  const sound = shown === null ? null : liveSound($("audio"), $("speaker"), $("sound-status"), shown);

  // --- figures and the viewers table ------------------------------------------
  const num = (x, digits) => (x === null || x === undefined ? "—" : x.toFixed(digits));
  const mbits = (bits) => `${num(bits / 1e6, 1)} Mbit/s`;
  function duration(sec) {
    const s = Math.floor(sec);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const two = (n) => String(n).padStart(2, "0");
    return `${h}:${two(m)}:${two(s % 60)}`;
  }
  const latency = (ms) => (ms === null ? "—" : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`);
  // With several cameras each viewer's camera comes first.
  const LABELS = [...(several ? ["camera"] : []), "address", "name", "kind", "fps", "loss", "latency", "recorded", "picture"];
  if (several) {
    const th = document.createElement("th");
    th.textContent = "camera";
    $("viewers").tHead.rows[0].prepend(th);
  }
  /** The size a paced viewer or a browser is sent (and a paced viewer's path estimate); "—" for a viewer sent the source as everyone is. */
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
  function renderViewers(all) {
    // One camera's page lists that camera's viewers.
    const viewers = shown === null || !several ? all : all.filter((v) => v.camera === cameras[shown]);
    $("viewer-count").textContent = `(${viewers.length})`;
    const body = $("viewers").tBodies[0];
    const rows = viewers.map((v) => {
      const tr = document.createElement("tr");
      tr.dataset.kind = v.kind;
      if (several) cell(tr, v.camera, "camera");
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
    $("uptime").textContent = duration(s.uptimeSec);
    if (shown === null) {
      const down = s.sources.filter((c) => !c.available).length;
      $("source").textContent = `${s.sources.length}${down ? ` (${down} unavailable)` : ""}`;
      $("bitrate").textContent = mbits(s.sources.reduce((n, c) => n + c.bitsPerSecond, 0));
      s.sources.forEach((c, i) => {
        const t = tiles[i];
        if (!t) return;
        t.size.textContent = `${c.width}×${c.height} · ${num(c.measuredFps, 1)} fps`;
        t.badge.hidden = c.available;
        t.figure.classList.toggle("down", !c.available);
      });
      return;
    }
    const c = s.sources[shown];
    // Only a camera with audio has something to play.
    $("speaker").hidden = !c.audio;
    if (!c.audio && sound) sound.stop();
    $("source").textContent = c.description;
    $("size").textContent = `${c.width}×${c.height}`;
    $("fps").textContent = `${num(c.measuredFps, 1)} of ${num(c.fps, 0)}`;
    $("bitrate").textContent = mbits(c.bitsPerSecond);
    $("unavailable").hidden = c.available;
    $("picture").classList.toggle("down", !c.available);
  }

  // --- the chart ----------------------------------------------------------------
  const chartBox = $("chart");
  let chart = null;
  const PALETTE = ["#4fc3f7", "#81c784", "#ffb74d", "#f06292", "#ba68c8", "#fff176", "#4db6ac", "#e57373"];
  const axis = { stroke: "#9aa0a6", grid: { stroke: "#2c3136" }, ticks: { stroke: "#2c3136" } };
  const fpsRange = (u, min, max) => [0, Math.max(max || 0, 1) * 1.15];
  /** What the chart draws: one camera's fps, its slowest viewer and worst latency; or every camera's fps. */
  const CHART = shown === null
    ? {
        series: [{}, ...cameras.map((name, i) => ({ label: `${name} fps`, scale: "fps", stroke: PALETTE[i % PALETTE.length], width: 2 }))],
        scales: { fps: { range: fpsRange } },
        axes: [axis, { ...axis, scale: "fps", label: "fps", size: 45 }],
        data: (s) => [s.sources[0].history.t, ...s.sources.map((c) => c.history.streamFps)],
      }
    : {
        series: [
          {},
          { label: "stream fps", scale: "fps", stroke: "#4fc3f7", width: 2 },
          { label: "slowest viewer fps", scale: "fps", stroke: "#81c784", width: 2 },
          { label: "worst latency", scale: "ms", stroke: "#ffb74d", width: 2, value: (u, v) => (v === null ? "—" : `${Math.round(v)} ms`) },
        ],
        scales: { fps: { range: fpsRange }, ms: { range: (u, min, max) => [0, Math.max(max || 0, 10) * 1.15] } },
        axes: [
          axis,
          { ...axis, scale: "fps", label: "fps", size: 45 },
          { ...axis, scale: "ms", side: 1, label: "ms", grid: { show: false }, size: 50 },
        ],
        data: (s) => {
          const h = s.sources[shown].history;
          return [h.t, h.streamFps, h.slowestViewerFps, h.worstLatencyMs];
        },
      };
  function renderChart(s) {
    if (typeof uPlot !== "function") return;
    if (chart) {
      chart.setData(CHART.data(s));
      return;
    }
    chart = new uPlot({
      width: chartBox.clientWidth || 320,
      height: CHART_HEIGHT,
      legend: { live: false },
      series: CHART.series,
      scales: CHART.scales,
      axes: CHART.axes,
    }, CHART.data(s), chartBox);
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
      renderChart(s);
      stateStatus.textContent = "";
      stateStatus.classList.remove("error");
    } catch (e) {
      stateStatus.textContent = `figures unavailable: ${e.message}`;
      stateStatus.classList.add("error");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  if (!document.hidden) for (const p of pictures) p.open();
  poll();
})();
