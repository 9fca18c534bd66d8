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
  // The health reasons crawlers/health.py writes, in Chinese (technical details such as error names stay as they are).
  const REASONS = [
    [/^never run$/, () => "尚未运行"],
    [/^configuration error \((\d+) pages\): (.*)$/, m => `配置错误（${m[1]} 页）：${m[2] === "see quarantine" ? "见隔离区" : m[2]}`],
    [/^(\d+) failed runs in a row; last: (.*)$/, m => `连续 ${m[1]} 次失败；最近一次：${m[2]}`],
    [/^credentials rejected or login wall \((.*)\): renew the cookie or token$/, m => `凭据被拒或遇到登录墙（${m[1]}）：请更新 Cookie 或令牌`],
    [/^run failed: (.*)$/, m => `运行失败：${m[1] === "no page could be fetched" ? "没有抓到任何页面" : m[1]}`],
    [/^pages that used to list entries now list none/, () => "以往有条目的列表页现在为空：网站结构可能已改变"],
    [/^parse errors jumped: (\d+) of (\d+) entries \((.*)\)$/, m => `解析错误激增：${m[2]} 条中 ${m[1]} 条（${m[3]}）`],
    [/^stopped early \((.*)\); the next run resumes$/, m => `提前停止（${m[1]}），下次运行继续`],
    [/^minor errors: (.*)$/, m => `少量错误：${m[1]}`],
    [/^fields? no longer found: (.*): the site or its selector changed/, m => `字段不再出现：${m[1]}；网站或选择器已改变（已存的值保留）`],
  ];
  function reasonZh(text) {
    for (const [re, to] of REASONS) { const m = String(text || "").match(re); if (m) return to(m); }
    return text || "";
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
          el("td", {class: "meta"}, reasonZh(s.reason)),
          el("td", {}, YQ.can("admin") ? el("button", {type: "button", onclick: async () => {
            try { await api("POST", `/api/sources/${encodeURIComponent(s.source)}/crawl`); flash("已开始采集：" + (s.name || s.source)); setTimeout(load, 2000); }
            catch (err) { flash(err.message); }
          }}, "立即采集") : "")))));
    } catch (err) { showError("sources", err); }
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 30000);
})();
