// The dashboard page: reads the JSON of /api/*, draws with Chart.js, and follows /events (one
// server-sent-events stream) to show each new revision without a reload. Read-only.
"use strict";

const state = { unit: "", period: "", units: [], charts: {}, pending: null };
const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function when(iso) {
  // Vietnam's time, as the province reads it.
  return new Date(iso).toLocaleString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh" });
}

function query() {
  return `unit=${encodeURIComponent(state.unit)}&period=${encodeURIComponent(state.period)}`;
}

async function loadUnits() {
  const data = await getJSON("/api/units");
  state.units = data.units;
  const params = new URLSearchParams(location.search);
  const known = (code) => state.units.some((u) => u.code === code);
  if (!state.unit) {
    const asked = params.get("unit");
    const city = state.units.find((u) => u.level === "district") || state.units[0];
    state.unit = asked && known(asked) ? asked : city ? city.code : "";
  }
  const select = $("unit");
  select.replaceChildren(
    ...state.units.map((u) => {
      const option = new Option(`${u.name} (${u.code})`, u.code);
      option.selected = u.code === state.unit;
      return option;
    })
  );
  fillPeriods(params.get("period"));
}

function fillPeriods(asked) {
  const unit = state.units.find((u) => u.code === state.unit);
  const periods = unit ? unit.periods : [];
  if (asked && periods.includes(asked)) state.period = asked;
  if (!periods.includes(state.period)) state.period = periods[periods.length - 1] || "";
  $("period").replaceChildren(
    ...periods.map((p) => {
      const option = new Option(`${p.slice(5)}/${p.slice(0, 4)}`, p);
      option.selected = p === state.period;
      return option;
    })
  );
}

function showReport(view) {
  $("title").textContent = view.title;
  $("meta").textContent =
    `${view.status} · lần ${view.revision} / revision ${view.revision} · ` +
    `lập lúc / generated ${when(view.generated_at)} · công bố / published ${when(view.published_at)}`;
  document.body.dataset.revision = String(view.revision);
  $("figures").tBodies[0].replaceChildren(
    ...view.figures.map((f) => {
      const tr = document.createElement("tr");
      tr.className = `depth-${f.depth}`;
      tr.dataset.figure = f.en;
      const vi = cell(f.vi);
      const under = document.createElement("span");
      under.className = "en-under";
      under.textContent = f.en;
      vi.append(under);
      tr.append(vi, cell(f.en, "en-col"), cell(f.text, "num"));
      return tr;
    })
  );
  $("rollup").hidden = view.children.length === 0;
  $("children").tBodies[0].replaceChildren(
    ...view.children.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.unit = c.code;
      tr.append(
        cell(c.name), cell(c.received, "num"), cell(c.resolved, "num"),
        cell(c.on_time_rate, "num"), cell(c.in_progress, "num"), cell(c.overdue, "num")
      );
      return tr;
    })
  );
  $("csv").href = `/report.csv?${query()}`;
  $("xlsx").href = `/report.xlsx?${query()}`;
}

function showHistory(entries) {
  $("revisions").tBodies[0].replaceChildren(
    ...entries.map((e) => {
      const tr = document.createElement("tr");
      const changed = document.createElement("td");
      if (e.changes.length === 0) {
        changed.textContent = e.revision === 1 ? "lần đầu / first" : "—";
      } else {
        // Folded: a revision from a late event changes a few figures, one from a catch-up all.
        const details = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = `${e.changes.length} chỉ tiêu / figures`;
        const list = document.createElement("ul");
        list.className = "changes";
        for (const c of e.changes) {
          const li = document.createElement("li");
          li.textContent = `${c.figure_vi} (${c.figure_en}): ${c.before} → ${c.after}`;
          list.append(li);
        }
        details.open = e.changes.length <= 3;
        details.append(summary, list);
        changed.append(details);
      }
      tr.append(cell(`${e.revision}${e.final ? " (chính thức / final)" : ""}`), cell(when(e.published_at)), changed);
      return tr;
    })
  );
}

function chart(id, config) {
  if (typeof Chart === "undefined") return; // the script failed to load: tables still show
  if (state.charts[id]) state.charts[id].destroy();
  config.options = Object.assign(
    { locale: "vi-VN", animation: false, responsive: true, maintainAspectRatio: false },
    config.options || {}
  );
  state.charts[id] = new Chart($(id), config);
}

const percent = { ticks: { callback: (v) => `${(v * 100).toLocaleString("vi-VN")}%` }, min: 0, max: 1 };

function showTrend(t) {
  const labels = t.periods.map((p) => `${p.slice(5)}/${p.slice(0, 4)}`);
  chart("trend-counts", {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Tiếp nhận / received", data: t.received },
        { label: "Đúng và trước hạn / on time", data: t.resolved_on_time },
        { label: "Trễ hẹn / late", data: t.resolved_late },
        { label: "Đang giải quyết / in progress", data: t.in_progress },
        { label: "Quá hạn / overdue", data: t.overdue },
      ],
    },
    options: { plugins: { title: { display: true, text: `${t.name}: hồ sơ / dossiers` } } },
  });
  chart("trend-rates", {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Tỷ lệ đúng hẹn / on-time rate", data: t.on_time_rate },
        { label: "Tỷ lệ trực tuyến / online share", data: t.online_share },
      ],
    },
    options: {
      scales: { y: percent },
      plugins: {
        title: { display: true, text: `${t.name}: tỷ lệ / rates` },
        tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${(c.parsed.y * 100).toLocaleString("vi-VN", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}%` } },
      },
    },
  });
}

function showOverdue(view) {
  $("overdue-units").tBodies[0].replaceChildren(
    ...view.units.map((u) => {
      const tr = document.createElement("tr");
      tr.append(cell(u.name), cell(u.overdue_text, "num"), cell(u.in_progress_text, "num"));
      return tr;
    })
  );
  chart("overdue-chart", {
    type: "bar",
    data: {
      labels: view.periods.map((p) => `${p.slice(5)}/${p.slice(0, 4)}`),
      datasets: view.units.map((u) => ({ label: u.name, data: u.by_period })),
    },
    options: { plugins: { title: { display: true, text: "Quá hạn theo tháng / overdue per month" } } },
  });
}

function showInterconnection(data) {
  const s = data.seals;
  $("seals").textContent =
    s.last_seq === null
      ? `Chưa niêm phong / not sealed yet; nhật ký / log at ${data.log_last_seq.toLocaleString("vi-VN")}`
      : `Niêm phong đến / sealed up to ${s.last_seq.toLocaleString("vi-VN")} (${when(s.sealed_at)}), ` +
        `${s.behind.toLocaleString("vi-VN")} sự kiện chưa niêm phong / events not sealed yet`;
  const v = data.verification;
  $("verify").dataset.intact = v ? String(v.intact) : "";
  $("verify").textContent = !v
    ? "Chưa kiểm tra / never run (or not recorded)"
    : `${v.intact ? "Toàn vẹn / intact" : "BỊ THAY ĐỔI / ALTERED"} · ${when(v.at)} · ` +
      `${v.events.toLocaleString("vi-VN")} sự kiện / events, ${v.seals.toLocaleString("vi-VN")} ` +
      `niêm phong / seals (${v.against}), khớp đến / matches up to ${v.verified_seq.toLocaleString("vi-VN")}`;
  $("altered").replaceChildren(
    ...(v ? v.altered : []).map((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      return li;
    })
  );
  const rows = data.outbox.map((r) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(r.name), cell(r.pending.toLocaleString("vi-VN"), "num"), cell(r.dossiers.toLocaleString("vi-VN"), "num"),
      cell(when(r.oldest_stored_at)), cell(r.parked.toLocaleString("vi-VN"), "num")
    );
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell("Không có gì chờ gửi / nothing waiting for the province");
    td.colSpan = 5;
    tr.append(td);
    rows.push(tr);
  }
  $("outbox").tBodies[0].replaceChildren(...rows);
  showSites(data.sites, data.sites_summary);
}

const LINKS = { up: "kết nối / up", down: "mất kết nối / down", never: "chưa kết nối / never" };

function showSites(sites, summary) {
  // Never a blank: the summary says "no sites" or "all caught up" when there is nothing behind.
  $("sites-summary").dataset.state = summary.state;
  $("sites-summary").textContent = summary.text;
  $("sites").tBodies[0].replaceChildren(
    ...sites.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.site = r.site;
      tr.dataset.link = r.link;
      tr.dataset.caughtUp = String(r.caught_up);
      const behind = `${r.at_least ? "≥" : ""}${r.behind.toLocaleString("vi-VN")}`;
      tr.append(
        cell(r.name), cell(LINKS[r.link] || r.link), cell(behind, "num"),
        cell(r.since ? when(r.since) : "–")
      );
      return tr;
    })
  );
}

function parentOf(code) {
  const unit = state.units.find((u) => u.code === code);
  const hasChildren = state.units.some((u) => u.parent === code);
  return hasChildren || !unit || !unit.parent ? code : unit.parent;
}

async function refresh() {
  // The deployment's health is shown even before any report is published.
  getJSON("/api/interconnection").then(showInterconnection, () => {});
  if (!state.unit || !state.period) {
    document.body.dataset.loaded = "true";
    return;
  }
  history.replaceState(null, "", `?${query()}`);
  const q = query();
  const rollup = `unit=${encodeURIComponent(parentOf(state.unit))}&period=${encodeURIComponent(state.period)}`;
  const [report, revisions, trend, overdue] = await Promise.all([
    getJSON(`/api/report?${q}`),
    getJSON(`/api/history?${q}`),
    getJSON(`/api/trend?${q}`),
    getJSON(`/api/overdue?${rollup}`),
  ]);
  showReport(report);
  showHistory(revisions);
  showTrend(trend);
  showOverdue(overdue);
  document.body.dataset.loaded = "true";
}

function follow() {
  const live = $("live");
  const source = new EventSource("/events");
  source.onopen = () => { live.dataset.state = "open"; live.textContent = "trực tiếp / live"; };
  source.onerror = () => { live.dataset.state = "closed"; live.textContent = "mất kết nối / reconnecting"; };
  source.addEventListener("revision", (e) => {
    const notice = JSON.parse(e.data);
    const known = state.units.some((u) => u.code === notice.unit && u.periods.includes(notice.period));
    clearTimeout(state.pending); // a burst of revisions (a roll-up and its wards) is one redraw
    state.pending = setTimeout(async () => {
      if (!known) await loadUnits();
      await refresh();
    }, 100);
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  $("unit").addEventListener("change", (e) => { state.unit = e.target.value; fillPeriods(null); refresh(); });
  $("period").addEventListener("change", (e) => { state.period = e.target.value; refresh(); });
  follow();
  await loadUnits();
  await refresh();
});
