// 复盘: SLA compliance by playbook / department / region / topic, time to first response, opinion before and after
// each response, reply quality, and links to the 舆情日报 (HTML and PDF, served by /api/reports).
"use strict";
(() => {
  const {el, get, showError, fmtTime, fmtDuration} = YQ;
  let data = null;
  let by = "by_playbook";
  const pct = v => v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`;

  function period() {
    const days = Number(document.getElementById("range").value);
    const until = new Date();
    const since = new Date(until.getTime() - days * 86400 * 1000);
    return {since: since.toISOString(), until: until.toISOString()};
  }

  function compliance() {
    const groups = (data.period[by] || []).slice(0, 12);
    if (!groups.length) { document.getElementById("compliance-chart").replaceChildren(el("p", {class: "muted"}, "这段时间没有到期的时限")); return; }
    YQ.chart(document.getElementById("compliance-chart"), {
      legend: {}, grid: {left: 8, right: 30, bottom: 20, containLabel: true},
      xAxis: {type: "category", data: groups.map(g => g.key || "（未填）"), axisLabel: {interval: 0, rotate: groups.length > 4 ? 30 : 0}},
      yAxis: [{type: "value", name: "项"}, {type: "value", name: "达标率 %", max: 100}],
      series: [{name: "按时", type: "bar", stack: "n", data: groups.map(g => g.met), itemStyle: {color: "#2e7d32"}},
        {name: "超时", type: "bar", stack: "n", data: groups.map(g => g.missed), itemStyle: {color: "#c62828"}},
        {name: "未到期", type: "bar", stack: "n", data: groups.map(g => g.open), itemStyle: {color: "#90a4ae"}},
        {name: "达标率 %", type: "line", yAxisIndex: 1, data: groups.map(g => g.compliance === null ? null : Math.round(g.compliance * 100))}],
    });
  }

  function render() {
    const t = data.period.total;
    const fr = data.first_response;
    document.getElementById("summary").replaceChildren(
      el("div", {class: "stat"}, el("b", {id: "compliance"}, pct(t.compliance)), "时限达标率"),
      el("div", {class: "stat"}, el("b", {}, String(t.met)), "按时完成"),
      el("div", {class: "stat"}, el("b", {}, String(t.missed)), "超时"),
      el("div", {class: "stat"}, el("b", {}, String(t.open)), "未到期"),
      el("div", {class: "stat"}, el("b", {}, fmtDuration(fr.median)), `首次回应（中位，${fr.runs} 项）`),
      el("div", {class: "stat"}, el("b", {}, String(data.runs.length)), "期间启动的处置"));
    compliance();
    const trend = data.trend || [];
    if (trend.some(b => b.met + b.missed + b.open)) YQ.chart(document.getElementById("trend-chart"), {
      legend: {}, grid: {left: 8, right: 30, bottom: 20, containLabel: true},
      xAxis: {type: "category", data: trend.map(b => fmtTime(b.since).slice(0, 10))},
      yAxis: [{type: "value", name: "项"}, {type: "value", name: "达标率 %", max: 100}],
      series: [{name: "按时", type: "bar", stack: "n", data: trend.map(b => b.met), itemStyle: {color: "#2e7d32"}},
        {name: "超时", type: "bar", stack: "n", data: trend.map(b => b.missed), itemStyle: {color: "#c62828"}},
        {name: "达标率 %", type: "line", yAxisIndex: 1, connectNulls: true,
          data: trend.map(b => b.compliance === null ? null : Math.round(b.compliance * 100))}],
    }); else document.getElementById("trend-chart").replaceChildren(el("p", {class: "muted"}, "这段时间没有到期的时限"));
    const runs = data.runs;
    const named = runs.map(r => (r.title || r.playbook_id).slice(0, 10) + "#" + r.run_id);
    const withFirst = runs.filter(r => r.time_to_first_response !== null);
    if (withFirst.length) YQ.chart(document.getElementById("ttfr-chart"), {
      grid: {left: 8, right: 20, bottom: 20, containLabel: true},
      xAxis: {type: "value", name: "小时"}, yAxis: {type: "category", data: withFirst.map(r => (r.title || r.playbook_id).slice(0, 10) + "#" + r.run_id)},
      series: [{name: "首次回应（小时）", type: "bar", data: withFirst.map(r => +(r.time_to_first_response / 3600).toFixed(1))}],
    }); else document.getElementById("ttfr-chart").replaceChildren(el("p", {class: "muted"}, "期间还没有公开回应"));
    const withEffect = runs.filter(r => r.effect);
    if (withEffect.length) YQ.chart(document.getElementById("effect-chart"), {
      legend: {}, grid: {left: 8, right: 20, bottom: 20, containLabel: true},
      xAxis: {type: "category", data: withEffect.map(r => (r.title || r.playbook_id).slice(0, 10) + "#" + r.run_id)},
      yAxis: {type: "value", name: "负面占比 %", max: 100},
      series: [{name: "回应前", type: "bar", data: withEffect.map(r => r.effect.before.negative_share === null ? null : Math.round(r.effect.before.negative_share * 100))},
        {name: "回应后", type: "bar", data: withEffect.map(r => r.effect.after.negative_share === null ? null : Math.round(r.effect.after.negative_share * 100))}],
    }); else document.getElementById("effect-chart").replaceChildren(el("p", {class: "muted"}, "期间没有可比较的回应前后数据（需归入事件并已公开回应）"));
    document.getElementById("runs").replaceChildren(runs.length ? el("table", {id: "runs-table"},
      el("tr", {}, ["处置", "预案", "部门", "属地", "启动", "时限（按时/超时/未到期）", "首次回应", "回应前→后 负面占比", "答复质量（相关/完整/可解释）", "答复用时"].map(h => el("th", {}, h))),
      runs.map((r, n) => el("tr", {},
        el("td", {}, el("a", {href: "/plans?run=" + r.run_id}, named[n])), el("td", {}, r.playbook_id), el("td", {}, r.department || "—"),
        el("td", {}, r.region || "—"), el("td", {}, fmtTime(r.started_at)),
        el("td", {}, `${r.deadlines.met} / ${r.deadlines.missed} / ${r.deadlines.open}`),
        el("td", {}, fmtDuration(r.time_to_first_response)),
        el("td", {}, r.effect ? `${pct(r.effect.before.negative_share)} → ${pct(r.effect.after.negative_share)}${r.effect.after_complete ? "" : "（统计中）"}` : "—"),
        el("td", {}, r.reply_quality ? `${r.reply_quality.relevance.toFixed(2)} / ${r.reply_quality.completeness.toFixed(2)} / ${r.reply_quality.interpretability.toFixed(2)}` : "—"),
        el("td", {}, r.reply_quality && r.reply_quality.working_days !== null ? `${r.reply_quality.working_days} 个工作日` : "—")))) :
      el("p", {class: "muted"}, "这段时间没有启动处置"));
  }

  async function load() {
    const p = period();
    try {
      data = await get(`/api/review/summary?since=${encodeURIComponent(p.since)}&until=${encodeURIComponent(p.until)}`);
      render();
    } catch (err) {
      for (const id of ["compliance-chart", "trend-chart", "ttfr-chart", "effect-chart", "runs"]) document.getElementById(id).replaceChildren();
      showError("summary", err);
    }
  }

  function dailyLinks() {
    const date = document.getElementById("daily-date").value;
    document.getElementById("daily-html").setAttribute("href", `/api/reports/daily?date=${date}&format=html`);
    document.getElementById("daily-pdf").setAttribute("href", `/api/reports/daily?date=${date}&format=pdf`);
  }
  const today = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
  document.getElementById("daily-date").value = today;
  document.getElementById("daily-date").addEventListener("change", dailyLinks);
  dailyLinks();
  document.getElementById("range").addEventListener("change", load);
  document.getElementById("by").addEventListener("click", ev => {
    const b = ev.target.closest("button"); if (!b || !data) return;
    by = b.dataset.by;
    for (const x of document.querySelectorAll("#by button")) x.setAttribute("aria-pressed", String(x === b));
    compliance();
  });
  document.getElementById("csv").addEventListener("click", () => {
    const p = period();
    location.assign(`/api/plans/review.csv?since=${encodeURIComponent(p.since)}&until=${encodeURIComponent(p.until)}`);
  });
  load();
})();
