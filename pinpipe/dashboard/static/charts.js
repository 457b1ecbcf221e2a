/* pinpipe dashboard charts: tiny hand-written SVG, no library, no network.
 * Every drawn value carries data-label / data-value so tests (and people) can read what is shown. */
(() => {
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const NUMBER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (value !== 0 && Math.abs(value) < 0.01) return value.toExponential(1);
  return NUMBER.format(value);
}

/* Years, ranks and partitions are names, not quantities: no thousands separator. */
function fmtCell(column, value) {
  return /(year|rank|partition)$/.test(column) ? String(value) : fmt(value);
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function clip(text, max) {
  text = String(text);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/* Ranked horizontal bars: items = [{label, value, sub?}], largest first as given. */
function barChart(box, items, opts) {
  opts = opts || {};
  box.replaceChildren();
  const width = Math.max(box.clientWidth || 300, 240);
  const row = 26;
  const labelW = Math.min(Math.round(width * 0.38), 170);
  const hasSub = items.some((d) => d.sub);
  const valueW = hasSub ? Math.min(150, Math.round(width * 0.3)) : 64;
  const barMax = Math.max(width - labelW - valueW - 12, 40);
  const max = Math.max(1, ...items.map((d) => d.value || 0));
  const svg = svgEl("svg", {
    width: width, height: items.length * row + 4, role: "img",
    "aria-label": opts.title || "bar chart", class: "chart bar-chart",
  });
  items.forEach((d, i) => {
    const y = i * row + 2;
    const g = svgEl("g", { class: "bar", "data-label": d.label, "data-value": d.value });
    const label = d.sub ? `${d.label} · ${d.sub}` : d.label;
    g.appendChild(svgEl("title", {}, `${label}: ${fmt(d.value)}`));
    g.appendChild(svgEl("text", { x: labelW - 6, y: y + 17, "text-anchor": "end", class: "lbl" },
      clip(d.label, Math.floor(labelW / 7.2))));
    const w = Math.max(2, (barMax * (d.value || 0)) / max);
    g.appendChild(svgEl("rect", { x: labelW, y: y + 3, width: w, height: row - 8, rx: 3,
      class: `fill c${i % 8}` }));
    const val = svgEl("text", { x: labelW + w + 6, y: y + 17, class: "val" }, fmt(d.value));
    if (d.sub) {
      /* the second name (a country's top category) after the value, in muted text */
      val.appendChild(svgEl("tspan", { class: "sub-out" }, ` · ${clip(d.sub, Math.floor((valueW - 30) / 6.5))}`));
    }
    g.appendChild(val);
    svg.appendChild(g);
  });
  box.appendChild(svg);
}

/* Ordered columns (years, age groups): items = [{label, value, sub?}] in axis order. */
function columnChart(box, items, opts) {
  opts = opts || {};
  box.replaceChildren();
  const width = Math.max(box.clientWidth || 300, 240);
  const height = 210;
  const top = 22, bottom = items.some((d) => d.sub) ? 44 : 26;
  const plotH = height - top - bottom;
  const slot = width / Math.max(items.length, 1);
  const barW = Math.min(56, slot * 0.7);
  const max = Math.max(1, ...items.map((d) => d.value || 0));
  const svg = svgEl("svg", {
    width: width, height: height, role: "img",
    "aria-label": opts.title || "column chart", class: "chart column-chart",
  });
  svg.appendChild(svgEl("line", { x1: 0, x2: width, y1: top + plotH, y2: top + plotH, class: "axis" }));
  items.forEach((d, i) => {
    const cx = slot * i + slot / 2;
    const h = Math.max(2, (plotH * (d.value || 0)) / max);
    const g = svgEl("g", { class: "bar", "data-label": d.label, "data-value": d.value });
    g.appendChild(svgEl("title", {}, `${d.label}${d.sub ? " · " + d.sub : ""}: ${fmt(d.value)}`));
    g.appendChild(svgEl("rect", { x: cx - barW / 2, y: top + plotH - h, width: barW, height: h, rx: 3,
      class: `fill c${i % 8}` }));
    g.appendChild(svgEl("text", { x: cx, y: top + plotH - h - 6, "text-anchor": "middle", class: "val" },
      fmt(d.value)));
    g.appendChild(svgEl("text", { x: cx, y: top + plotH + 16, "text-anchor": "middle", class: "lbl" },
      clip(d.label, Math.max(4, Math.floor(slot / 7)))));
    if (d.sub) {
      g.appendChild(svgEl("text", { x: cx, y: top + plotH + 32, "text-anchor": "middle", class: "sub" },
        clip(d.sub, Math.max(4, Math.floor(slot / 6.5)))));
    }
    svg.appendChild(g);
  });
  box.appendChild(svg);
}

/* A small line of recent values (no axes): the shape of the last minute. */
function sparkline(values, height) {
  const width = 100;
  const max = Math.max(1, ...values);
  const step = width / Math.max(values.length - 1, 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((height - 4) * v) / max).toFixed(1)}`);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", height: height,
    class: "spark", "aria-hidden": "true" });
  svg.appendChild(svgEl("polyline", { points: points.join(" "), class: "spark-line" }));
  return svg;
}

/* A plain table; numbers right-aligned and formatted, the raw value kept in data-value. */
function dataTable(box, columns, rows) {
  box.replaceChildren();
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.textContent = c.replaceAll("_", " ");
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of columns) {
      const td = tr.insertCell();
      const v = r[c];
      td.dataset.col = c;
      if (typeof v === "number") {
        td.className = "num";
        td.dataset.value = String(v);
        td.textContent = fmtCell(c, v);
      } else {
        td.textContent = v === null || v === undefined ? "–" : Array.isArray(v) ? v.join(", ") : String(v);
      }
    }
  }
  box.appendChild(table);
}

window.pinpipeCharts = { barChart, columnChart, dataTable, sparkline, fmt, fmtCell };
})();
