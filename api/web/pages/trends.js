// 趋势: daily volume per group (chart), spikes against their baseline with explanations, groups still waiting.
"use strict";
(() => {
  const {el, get, showError} = YQ;
  const DIMS = {topic: "主题", scheme: "监测方案", region: "属地", source: "信息源"};

  async function volume() {
    const by = document.getElementById("by").value, days = document.getElementById("days").value;
    try {
      const v = await get(`/api/feed/volume?by=${by}&days=${days}`);
      YQ.chart(document.getElementById("volume-chart"), {
        legend: {type: "scroll"}, grid: {left: 40, right: 20, bottom: 30},
        xAxis: {type: "category", data: v.days}, yAxis: {type: "value", name: "条/天"},
        series: v.series.map(s => ({name: s.name || "（未知）", type: "line", data: s.counts})),
      });
    } catch (err) { showError("volume-chart", err); }
  }

  async function spikes() {
    try {
      const s = await get("/api/trends/spikes");
      document.getElementById("spikes").replaceChildren(...(s.data.length ? s.data.map(sp => el("li", {},
        el("div", {class: "item-head"}, el("span", {class: "badge II"}, `×${sp.ratio}`),
          el("b", {}, `${DIMS[sp.dimension] || sp.dimension}：${sp.value}`)),
        el("div", {class: "meta"}, `近期 ${sp.recent} 条，基线 ${sp.baseline} 条，预期 ${sp.expected} 条（p=${Number(sp.p_value).toPrecision(2)}）`),
        el("div", {class: "item-head"}, "突出词：", ((sp.explanation || {}).terms || []).slice(0, 8).map(t => el("span", {class: "kw"}, `${t.term} ${t.recent}`))),
        el("div", {class: "item-head"}, (sp.item_ids || []).slice(0, 5).map(i => el("a", {class: "tag", href: "/items/" + i}, "#" + i)))))
        : []));
      const top = s.data.slice(0, 10);
      if (top.length) YQ.chart(document.getElementById("spike-chart"), {
        legend: {}, grid: {left: 8, right: 20, bottom: 20, containLabel: true},
        xAxis: {type: "category", data: top.map(sp => `${DIMS[sp.dimension] || sp.dimension}:${sp.value}`.slice(0, 12))},
        yAxis: {type: "value"},
        series: [{name: "近期", type: "bar", data: top.map(sp => sp.recent)}, {name: "预期", type: "bar", data: top.map(sp => sp.expected)}],
      }); else document.getElementById("spike-chart").replaceChildren(el("p", {class: "muted"}, "当前没有突增：各分组近期数量都在基线范围内"));
      const rows = s.waiting_for_baseline || [];
      document.getElementById("waiting").replaceChildren(rows.length ? el("table", {},
        el("tr", {}, el("th", {}, "维度"), el("th", {}, "分组"), el("th", {}, "近期"), el("th", {}, "说明")),
        rows.slice(0, 30).map(w => el("tr", {}, el("td", {}, DIMS[w.dimension] || w.dimension), el("td", {}, w.value),
          el("td", {}, String(w.recent)), el("td", {}, w.reason)))) : el("p", {class: "muted"}, "无"));
    } catch (err) { showError("spikes", err); }
  }
  document.getElementById("by").addEventListener("change", volume);
  document.getElementById("days").addEventListener("change", volume);
  volume();
  spikes();
})();
