/* pinpipe dashboard: polls the JSON API every refresh period and redraws what changed. */
"use strict";

const { barChart, columnChart, dataTable, fmt } = window.pinpipeCharts;
const REFRESH_MS = Number(document.body.dataset.refreshMs) || 2000;
const TOP_COUNTRIES = 15;
const batchVersions = new Map();
let refreshes = 0;

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

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function streamLabel(topic) {
  let m = /^streaming-[^-]+-(\w+)$/.exec(topic);
  if (m) return `stream ${m[1]}`;
  m = /\.(\w+)$/.exec(topic);
  return m ? `topic ${m[1]}` : topic;
}

function renderStatus(status) {
  const eps = $("#eps .body");
  const lag = $("#lag .body");
  const lagTable = $("#lag-table");
  if (!status.available) {
    showEmpty(eps, status.hint);
    showEmpty(lag, status.hint);
    lagTable.replaceChildren();
    return;
  }
  const streams = status.rates.filter((r) => r.stream.startsWith("streaming-"));
  const rates = streams.length ? streams : status.rates;
  if (!rates.length) {
    showEmpty(eps, "no streams yet: run `pinpipe emulate --mode stream` (or `pinpipe demo`)");
  } else {
    eps.replaceChildren(...rates.map((r) => {
      const div = document.createElement("div");
      div.className = "stat";
      div.dataset.stream = r.stream;
      div.dataset.value = String(r.events_per_second);
      div.innerHTML = `<span class="big">${escapeHTML(fmt(r.events_per_second))}</span>` +
        `<span class="unit">events/s</span><span class="name" title="${escapeHTML(r.stream)}">` +
        `${escapeHTML(streamLabel(r.stream))}</span>`;
      return div;
    }));
  }
  const lagged = status.partitions.filter((p) => p.lag !== null);
  if (!lagged.length) {
    showEmpty(lag, "no consumer has committed yet: run `pinpipe sink run` or `pinpipe stream run`");
  } else {
    barChart(lag, lagged.map((p) => ({
      label: `${streamLabel(p.topic)} p${p.partition}`, sub: p.group, value: p.lag,
    })), { title: "lag per partition" });
  }
  dataTable(lagTable, ["topic", "partition", "end_offset", "group", "committed", "lag"], status.partitions);
}

function renderMetrics(metrics) {
  const boxes = ["#profiles", "#trending", "#countries"].map((id) => $(`${id} .body`));
  if (!metrics.available) {
    boxes.forEach((b) => showEmpty(b, metrics.hint));
    return;
  }
  const [profiles, trending, countries] = boxes;
  $("#profiles .window").textContent = metrics.profile_window ? `last ${metrics.profile_window}` : "";
  if (metrics.top_profiles.length) {
    dataTable(profiles, ["rank", "poster_name", "posts", "follower_count"], metrics.top_profiles);
  } else showEmpty(profiles, "no profiles in the window yet");
  if (metrics.trending_categories.length) {
    barChart(trending, metrics.trending_categories.map((c) => ({
      label: c.category, value: c.score, sub: `${fmt(c.count)} in last min`,
    })), { title: "trending categories" });
  } else showEmpty(trending, "no categories yet");
  if (metrics.country_activity.length) {
    barChart(countries, metrics.country_activity.slice(0, TOP_COUNTRIES).map((c) => ({
      label: c.country, value: c.events,
    })), { title: "activity by country" });
  } else showEmpty(countries, "no countries yet");
  $("#late").textContent = `late events: ${fmt(metrics.late_events)}`;
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
  for (const summary of list.outputs) {
    const card = batchCard(summary);
    const meta = card.querySelector(".meta");
    if (!summary.available) {
      meta.textContent = "not written yet";
      card.querySelector(".chart-box").replaceChildren();
      showEmpty(card.querySelector(".table-box"), "run `pinpipe batch run`");
      batchVersions.delete(summary.name);
      continue;
    }
    if (batchVersions.get(summary.name) === summary.version) continue;
    const output = await getJSON(`/api/batch/${encodeURIComponent(summary.name)}`);
    const when = output.committed_at ? new Date(output.committed_at).toLocaleString() : "";
    meta.textContent = `${output.row_count} rows · version ${output.version}${when ? " · " + when : ""}`;
    const chartBox = card.querySelector(".chart-box");
    if (output.chart === "bar") barChart(chartBox, chartItems(output), { title: output.title });
    else if (output.chart === "column") columnChart(chartBox, chartItems(output), { title: output.title });
    dataTable(card.querySelector(".table-box"), output.columns, output.rows);
    card.dataset.version = String(output.version);
    batchVersions.set(summary.name, output.version);
  }
}

async function refresh() {
  try {
    const [status, metrics, batch] = await Promise.all([
      getJSON("/api/status"), getJSON("/api/metrics"), getJSON("/api/batch"),
    ]);
    renderStatus(status);
    renderMetrics(metrics);
    await renderBatch(batch);
    refreshes += 1;
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
