// 热点: events ranked by heat (chart and list) and issues, the same grievance across time.
"use strict";
(() => {
  const {el, get, showError, fmtTime, CHANNELS} = YQ;
  async function load() {
    const days = document.getElementById("days").value;
    try {
      const hot = await get("/api/events/hot?limit=20" + (days ? "&days=" + days : ""));
      const list = document.getElementById("hot");
      list.replaceChildren(...(hot.data.length ? hot.data.map(ev => el("li", {},
        el("div", {class: "item-head"}, el("b", {}, `#${ev.rank}`),
          el("a", {class: "title", href: "/events/" + encodeURIComponent(ev.id)}, ev.title || ev.id)),
        el("div", {class: "meta"}, `热度 ${Math.round(ev.heat)} · ${ev.volume} 条 · 互动 ${ev.engagement} · `,
          YQ.names(ev.channels).map(c => CHANNELS[c] || c).join("、"), ` · ${fmtTime(ev.first_seen)} 至 ${fmtTime(ev.last_seen)}`),
        (ev.keywords || []).length ? el("div", {class: "item-head"}, ev.keywords.slice(0, 8).map(k => el("span", {class: "kw"}, k))) : null))
        : [el("li", {class: "muted"}, "这段时间没有两条以上信息的事件")]));
      const top = hot.data.slice(0, 10).reverse();
      YQ.chart(document.getElementById("hot-chart"), {
        grid: {left: 8, right: 24, top: 10, bottom: 20, containLabel: true},
        xAxis: {type: "value", name: "热度"},
        yAxis: {type: "category", data: top.map(ev => (ev.title || ev.id).slice(0, 14)), axisLabel: {width: 160, overflow: "truncate"}},
        series: [{name: "热度", type: "bar", data: top.map(ev => Math.round(ev.heat)), itemStyle: {color: "#c62828"}}],
      });
    } catch (err) { showError("hot", err); }
    try {
      const issues = await get("/api/issues?min_events=2&limit=15");
      document.getElementById("issues").replaceChildren(...(issues.data.length ? issues.data.map(is => el("li", {},
        el("div", {class: "title"}, is.title || is.id),
        el("div", {class: "meta"}, `${is.events} 个事件 · ${is.volume} 条 · 热度 ${Math.round(is.heat)} · ${fmtTime(is.first_seen)} 至 ${fmtTime(is.last_seen)}`),
        el("div", {class: "item-head"}, "事件：", (is.event_ids || []).slice(0, 8).map((eid, n) =>
          el("a", {class: "tag", href: "/events/" + encodeURIComponent(eid)}, `#${n + 1}`)))))
        : [el("li", {class: "muted"}, "暂无跨时间的热点问题")]));
    } catch (err) { showError("issues", err); }
  }
  document.getElementById("days").addEventListener("change", load);
  load();
})();
