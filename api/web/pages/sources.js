// 信息源: each crawled source's health with the fields GET /api/sources answers (last_success_at, last_run_at…).
"use strict";
(() => {
  const {el, get, api, showError, flash, fmtTime, CHANNELS, SOURCE_STATES} = YQ;
  function schedule(s) {
    if (!s) return "";
    if (s.cron) return "cron " + s.cron;
    const sec = s.interval_seconds;
    return sec ? (sec >= 3600 ? `每 ${(sec / 3600).toFixed(1)} 小时` : `每 ${Math.round(sec / 60)} 分钟`) : "";
  }
  async function load() {
    try {
      const body = await get("/api/sources");
      document.getElementById("sources").replaceChildren(el("table", {id: "sources-table"},
        el("tr", {}, ["信息源", "渠道", "状态", "最近成功", "最近运行", "上次条数", "连续失败", "周期", "说明", ""].map(h => el("th", {}, h))),
        body.data.map(s => el("tr", {"data-source": s.source},
          el("td", {}, s.name || s.source), el("td", {}, CHANNELS[s.channel] || s.channel),
          el("td", {}, el("span", {class: "badge " + s.state}, (SOURCE_STATES[s.state] || s.state) + (s.running ? " · 采集中" : ""))),
          el("td", {class: "last-success"}, s.last_success_at ? fmtTime(s.last_success_at) : "从未成功"),
          el("td", {}, fmtTime(s.last_run_at) || "—"), el("td", {}, String(s.last_items ?? 0)),
          el("td", {}, String(s.consecutive_failures ?? 0)), el("td", {}, schedule(s.schedule)),
          el("td", {class: "meta"}, s.reason === "never run" ? "尚未运行" : s.reason || ""),
          el("td", {}, YQ.can("admin") ? el("button", {type: "button", onclick: async () => {
            try { await api("POST", `/api/sources/${encodeURIComponent(s.source)}/crawl`); flash("已开始采集：" + (s.name || s.source)); setTimeout(load, 2000); }
            catch (err) { flash(err.message); }
          }}, "立即采集") : "")))));
    } catch (err) { showError("sources", err); }
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 30000);
})();
