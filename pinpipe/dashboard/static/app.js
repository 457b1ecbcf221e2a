/* pinpipe dashboard: polls the JSON API every refresh period and redraws what changed. */
(() => {
"use strict";

const { barChart, columnChart, dataTable, sparkline, fmt } = window.pinpipeCharts;
const REFRESH_MS = Number(document.body.dataset.refreshMs) || 2000;
const TOP_COUNTRIES = 15;
const batchVersions = new Map();
let refreshes = 0;
let profileWindow = "24h";
let lastMetrics = null;

function $(sel) { return document.querySelector(sel); }

function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/* "run `pinpipe batch run`" -> the command shown as code. */
function showEmpty(box, hint) {
  box.replaceChildren();
  const p = document.createElement("p");
  p.className = "empty";
  p.innerHTML = escapeHTML(hint || "nothing yet").replace(/`([^`]+)`/g, "<code>$1</code>");
  box.appendChild(p);
}

/* A 403 is a key limited to prefixes asking for what no prefix owns: the section shows why, like an
 * empty one (no outputs, no metrics), and the rest of the page still refreshes. */
async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (response.status === 403) {
    const refused = await response.json();
    return { available: false, hint: refused.detail, outputs: [] };
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function streamLabel(topic) {
  if (/^\w+$/.test(topic)) return `stream ${topic}`;
  let m = /^streaming-[^-]+-(\w+)$/.exec(topic);
  if (m) return `stream ${m[1]}`;
  m = /\.(\w+)$/.exec(topic);
  return m ? `topic ${m[1]}` : topic;
}

function renderStatus(status) {
  const lag = $("#lag .body");
  const lagTable = $("#lag-table");
  if (!status.available) {
    showEmpty(lag, status.hint);
    lagTable.replaceChildren();
    return;
  }
  const lagged = status.partitions.filter((p) => p.lag !== null);
  if (!lagged.length) {
    showEmpty(lag, "no consumer has committed yet: run `pinpipe sink run` or `pinpipe stream run`");
  } else {
    barChart(lag, lagged.map((p) => ({
      label: `${streamLabel(p.topic)} p${p.partition}`, sub: p.group.replace(/^pinpipe-/, ""), value: p.lag,
    })), { title: "lag per partition" });
  }
  dataTable(lagTable, ["topic", "partition", "end_offset", "group", "committed", "lag"], status.partitions);
}

/* Processed events per second (stream processor) with the last minute's shape; the log's arrival
 * rate right now next to it. Before the processor ran, the log's rates alone. */
function renderEps(metrics, status) {
  const box = $("#eps .body");
  const rates = status.available ? status.rates : [];
  /* the processor names a stream by its kind (pin) or in full (streaming-<prefix>-pin) */
  const logRate = (stream) => rates.find((r) => r.stream === stream ||
    (r.stream.startsWith("streaming-") && r.stream.endsWith(`-${stream}`)));
  const rows = metrics.available && metrics.events_per_second.length
    ? metrics.events_per_second
    : (status.available ? status.rates.filter((r) => r.stream.startsWith("streaming-")) : []);
  if (!rows.length) {
    showEmpty(box, status.available || metrics.available
      ? "no stream events yet: run `pinpipe emulate --mode stream` and `pinpipe stream run` (or `pinpipe demo`)"
      : status.hint);
    return;
  }
  box.replaceChildren(...rows.map((r) => {
    const div = document.createElement("div");
    div.className = "stat";
    div.dataset.stream = r.stream;
    div.dataset.value = String(r.events_per_second);
    div.innerHTML = `<span class="name" title="${escapeHTML(r.stream)}">${escapeHTML(streamLabel(r.stream))}</span>` +
      `<span class="big">${escapeHTML(fmt(r.events_per_second))}</span><span class="unit">events/s</span>`;
    if (r.series) {
      div.appendChild(sparkline(r.series, 28));
      const at = document.createElement("span");
      at.className = "unit";
      const logNow = logRate(r.stream);
      at.textContent = `at ${r.as_of.slice(11, 19)}` + (logNow ? ` · arriving now ${fmt(logNow.events_per_second)}/s` : "");
      div.appendChild(at);
    }
    return div;
  }));
}

function renderProfiles(metrics) {
  const box = $("#profiles .body");
  const windows = [...new Set(metrics.top_profiles.map((p) => p.window))];
  if (!windows.includes(profileWindow) && windows.length) profileWindow = windows[0];
  const tabs = $("#profiles .tabs");
  tabs.replaceChildren(...windows.map((w) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `last ${w}`;
    b.className = w === profileWindow ? "on" : "";
    b.addEventListener("click", () => { profileWindow = w; renderProfiles(lastMetrics); });
    return b;
  }));
  const rows = metrics.top_profiles.filter((p) => p.window === profileWindow);
  if (rows.length) {
    dataTable(box, ["rank", "poster_name", "posts", "follower_count"], rows);
    const range = document.createElement("p");
    range.className = "meta";
    range.textContent = `event time ${rows[0].window_start.replace("T", " ")} – ${rows[0].window_end.replace("T", " ")}`;
    box.appendChild(range);
  } else showEmpty(box, "no posts in the window yet");
}

function renderMetrics(metrics) {
  lastMetrics = metrics;
  const boxes = ["#profiles", "#trending", "#countries"].map((id) => $(`${id} .body`));
  if (!metrics.available) {
    boxes.forEach((b) => showEmpty(b, metrics.hint));
    return;
  }
  const [, trending, countries] = boxes;
  renderProfiles(metrics);
  if (metrics.trending_categories.length) {
    barChart(trending, metrics.trending_categories.map((c) => ({
      label: c.category, value: c.score, sub: `${fmt(c.posts)}/min`,
    })), { title: "trending categories" });
  } else showEmpty(trending, "no categories yet");
  if (metrics.country_activity.length) {
    barChart(countries, metrics.country_activity.slice(0, TOP_COUNTRIES).map((c) => ({
      label: c.country ?? "(unknown)", value: c.events_total,
    })), { title: "activity by country" });
  } else showEmpty(countries, "no countries yet");
  $("#late").textContent = metrics.late_events.map((l) =>
    `${l.input}: ${fmt(l.late_events)} late` + (l.unpaired_events ? `, ${fmt(l.unpaired_events)} unpaired` : "") +
    ` of ${fmt(l.events)}`).join(" · ");
}

function batchCard(summary) {
  let card = document.getElementById(`out-${summary.name}`);
  if (card) return card;
  card = document.createElement("article");
  card.className = `card output ${summary.chart === "table" ? "" : "wide-chart"}`;
  card.id = `out-${summary.name}`;
  card.dataset.output = summary.name;
  card.innerHTML = `<h3>${escapeHTML(summary.title)}</h3><p class="meta"></p>` +
    `<div class="chart-box"></div><div class="table-box"></div>`;
  $("#batch-grid").appendChild(card);
  return card;
}

function chartItems(output) {
  const value = output.value;
  const label = output.groups[output.groups.length - 1];
  const subCol = output.columns.find((c) => !output.groups.includes(c) && c !== value);
  let rows = output.rows;
  if (output.chart === "bar") {
    rows = [...rows].sort((a, b) => (b[value] ?? 0) - (a[value] ?? 0)).slice(0, TOP_COUNTRIES);
  }
  return rows.map((r) => ({ label: String(r[label]), value: r[value], sub: subCol ? r[subCol] : undefined }));
}

async function renderBatch(list) {
  $("#batch-hint").replaceChildren();
  if (list.hint) showEmpty($("#batch-hint"), list.hint);
  const changed = [];
  for (const summary of list.outputs) {
    const card = batchCard(summary);
    if (!summary.available) {
      card.querySelector(".meta").textContent = "not written yet";
      card.querySelector(".chart-box").replaceChildren();
      showEmpty(card.querySelector(".table-box"), "run `pinpipe batch run`");
      batchVersions.delete(summary.name);
    } else if (batchVersions.get(summary.name) !== summary.version) {
      changed.push(summary.name);
    }
  }
  /* only outputs with a new Delta version are fetched again, all at once */
  const outputs = await Promise.all(changed.map((name) => getJSON(`/api/batch/${encodeURIComponent(name)}`)));
  for (const output of outputs) drawOutput(output);
}

function drawOutput(output) {
  const card = document.getElementById(`out-${output.name}`);
  const when = output.committed_at ? new Date(output.committed_at).toLocaleString() : "";
  card.querySelector(".meta").textContent =
    `${output.row_count} rows · version ${output.version}${when ? " · " + when : ""}`;
  const chartBox = card.querySelector(".chart-box");
  if (output.chart === "bar") barChart(chartBox, chartItems(output), { title: output.title });
  else if (output.chart === "column") columnChart(chartBox, chartItems(output), { title: output.title });
  dataTable(card.querySelector(".table-box"), output.columns, output.rows);
  card.dataset.version = String(output.version);
  batchVersions.set(output.name, output.version);
}

async function refresh() {
  try {
    const [status, metrics, batch] = await Promise.all([
      getJSON("/api/status"), getJSON("/api/metrics"), getJSON("/api/batch"),
    ]);
    renderStatus(status);
    renderEps(metrics, status);
    renderMetrics(metrics);
    await renderBatch(batch);
    refreshes += 1;
    if (refreshes === 1) document.body.dataset.firstDrawMs = String(Math.round(performance.now()));
    document.body.dataset.refreshes = String(refreshes);
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("#conn").className = "dot ok";
    $("#error").hidden = true;
  } catch (err) {
    $("#conn").className = "dot bad";
    $("#error").hidden = false;
    $("#error").textContent = `cannot reach the dashboard API (${err.message}); retrying every ${REFRESH_MS / 1000} s`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { batchVersions.clear(); }, 200);
});

refresh();
})();
