// 事件详情: the event's facts, a timeline of volume and negative share, and its items across channels.
"use strict";
(() => {
  const {el, get, showError, fmtTime, evidenceTerms, highlight, gradeBadge, CHANNELS} = YQ;
  const id = decodeURIComponent(location.pathname.split("/").pop());

  function timeline(items) {
    if (!items.length) return;
    const times = items.map(i => new Date(i.published_at).getTime());
    const span = Math.max(...times) - Math.min(...times);
    const hourly = span < 3 * 86400 * 1000;
    const buckets = new Map();
    for (const i of items) {
      const d = new Date(new Date(i.published_at).getTime() + 8 * 3600 * 1000);  // Asia/Shanghai
      const key = hourly ? d.toISOString().slice(0, 13).replace("T", " ") + "时" : d.toISOString().slice(0, 10);
      const b = buckets.get(key) || {n: 0, neg: 0, risk: 0};
      b.n += 1;
      const e = i.enrichment || {};
      if (e.polarity === "negative") b.neg += 1;
      b.risk += e.risk_score || 0;
      buckets.set(key, b);
    }
    const keys = [...buckets.keys()].sort();
    YQ.chart(document.getElementById("timeline"), {
      legend: {data: ["信息量", "负面占比 %", "平均风险"]},
      grid: {left: 40, right: 40, bottom: 40},
      xAxis: {type: "category", data: keys},
      yAxis: [{type: "value", name: "条"}, {type: "value", name: "% / 分", max: 100}],
      series: [
        {name: "信息量", type: "bar", data: keys.map(k => buckets.get(k).n)},
        {name: "负面占比 %", type: "line", yAxisIndex: 1, data: keys.map(k => Math.round(100 * buckets.get(k).neg / buckets.get(k).n))},
        {name: "平均风险", type: "line", yAxisIndex: 1, data: keys.map(k => Math.round(buckets.get(k).risk / buckets.get(k).n))},
      ],
    });
  }

  async function load() {
    let ev;
    try { ev = await get(`/api/events/${encodeURIComponent(id)}?limit=500`); } catch (err) {
      showError("event", err); document.getElementById("timeline").replaceChildren(); return;
    }
    YQ.fill("event", 
      el("h1", {}, ev.title || ev.id),
      el("div", {class: "stats"},
        el("div", {class: "stat"}, el("b", {}, String(ev.volume)), "条信息"),
        el("div", {class: "stat"}, el("b", {}, String(Math.round(ev.heat))), "热度"),
        el("div", {class: "stat"}, el("b", {}, String(ev.engagement)), "互动"),
        el("div", {class: "stat"}, el("b", {}, String(YQ.names(ev.channels).length)), "渠道")),
      el("p", {class: "meta"}, `首次出现 ${fmtTime(ev.first_seen)} · 最近 ${fmtTime(ev.last_seen)} · 渠道：`,
        YQ.names(ev.channels).map(c => CHANNELS[c] || c).join("、"), YQ.names(ev.regions).length ? " · 属地：" + YQ.names(ev.regions).join("、") : ""),
      (ev.keywords || []).length ? el("div", {class: "item-head"}, "关键词：", ev.keywords.map(k => el("span", {class: "kw"}, k))) : null);
    timeline(ev.items);
    document.getElementById("items").replaceChildren(...ev.items.map(i => {
      const e = i.enrichment || {};
      const terms = evidenceTerms(e.risk_reasons);
      return el("li", {class: "grade-" + (e.risk_level || "none")},
        el("div", {class: "item-head"}, gradeBadge(e), el("span", {class: "tag"}, CHANNELS[i.channel] || i.channel),
          el("a", {class: "title", href: "/items/" + i.id}, highlight(i.title || (i.content || "").slice(0, 40), terms))),
        el("div", {class: "content"}, highlight((i.content || "").slice(0, 200), terms)),
        el("div", {class: "meta"}, `${fmtTime(i.published_at)} · ${i.source}${i.reply ? " · 已答复" : ""}`));
    }));
  }
  load();
})();
