// 信息详情: the text with its risk evidence marked, the official reply, duplicates, linked items, alerts and plan runs.
"use strict";
(() => {
  const {el, get, showError, fmtTime, evidenceTerms, highlight, reasonList, gradeBadge, CHANNELS, EMOTIONS, POLARITY} = YQ;
  const id = Number(location.pathname.split("/").pop());

  function kv(pairs) {
    return el("dl", {class: "kv"}, pairs.filter(p => p[1] !== null && p[1] !== undefined && p[1] !== "")
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  async function load() {
    let item;
    try { item = await get(`/api/items/${id}`); } catch (err) {
      showError("item", err);
      for (const k of ["reply", "duplicates", "linked", "reasons", "alerts", "runs"]) document.getElementById(k).replaceChildren();
      return;
    }
    const e = item.enrichment || {};
    const terms = evidenceTerms(e.risk_reasons);
    document.title = (item.title || "信息详情") + " · yuqing 舆情";
    const eng = item.engagement || {};
    YQ.fill("item", 
      el("div", {class: "item-head"}, gradeBadge(e), el("span", {class: "tag"}, CHANNELS[item.channel] || item.channel),
        e.topic ? el("span", {class: "tag"}, e.topic) : null,
        e.emotion ? el("span", {class: "tag"}, "情绪：" + (EMOTIONS[e.emotion] || e.emotion)) : null,
        e.polarity ? el("span", {class: "tag"}, "倾向：" + (POLARITY[e.polarity] || e.polarity)) : null),
      el("h1", {id: "item-title", class: "title"}, highlight(item.title || "（无标题）", terms)),
      el("div", {id: "item-content", class: "content"}, highlight(item.content, terms)),
      (e.keywords || []).length ? el("div", {class: "item-head"}, "关键词：", e.keywords.map(k => el("span", {class: "kw"}, k))) : null,
      kv([["发布时间", fmtTime(item.published_at)], ["采集时间", fmtTime(item.fetched_at)], ["信息源", item.source],
        ["作者", item.author], ["属地", item.region], ["原文", item.url ? el("a", {href: item.url, rel: "noopener noreferrer"}, "打开原文") : null],
        ["互动", `点赞 ${eng.likes || 0} · 转发 ${eng.reposts || 0} · 评论 ${eng.comments || 0}`],
        ["所属事件", e.event_id && YQ.can("feed") ? el("a", {href: "/events/" + encodeURIComponent(e.event_id)}, "查看事件") : e.event_id],
        ["监测方案", (e.schemes || []).join("、")]]));
    document.getElementById("reasons").replaceChildren((e.risk_reasons || []).length ? reasonList(e.risk_reasons)
      : el("p", {class: "muted"}, "无风险依据"));
    document.getElementById("reply").replaceChildren(item.reply ? el("div", {},
      el("div", {class: "meta"}, [item.reply.department, fmtTime(item.reply.replied_at)].filter(Boolean).join(" · ")),
      el("div", {class: "content"}, item.reply.text)) : el("p", {class: "muted"}, "尚无官方答复"));
    const dups = item.duplicates || [];
    document.getElementById("duplicates").replaceChildren(dups.length ? el("ul", {class: "plain"}, dups.map(d => el("li", {},
      `${CHANNELS[d.channel] || d.channel || ""} ${d.source} · ${fmtTime(d.published_at || d.seen_at)} `,
      d.url ? el("a", {href: d.url, rel: "noopener noreferrer"}, "原文") : null))) : el("p", {class: "muted"}, "没有合并的重复信息"));
    linked(item);
    related(item);
  }

  async function linked(item) {
    const box = document.getElementById("linked");
    const eventId = (item.enrichment || {}).event_id;
    if (!YQ.can("feed")) return;
    if (!eventId) { box.replaceChildren(el("p", {class: "muted"}, "未归入事件")); return; }
    try {
      const ev = await get(`/api/events/${encodeURIComponent(eventId)}?limit=100`);
      const others = ev.items.filter(i => i.id !== item.id);
      const other = others.filter(i => i.channel !== item.channel);
      const shown = (other.length ? other : others).slice(0, 10);
      box.replaceChildren(shown.length ? el("ul", {class: "plain"}, shown.map(i => el("li", {},
        el("span", {class: "tag"}, CHANNELS[i.channel] || i.channel), " ",
        el("a", {href: "/items/" + i.id}, i.title || (i.content || "").slice(0, 40)),
        el("span", {class: "meta"}, " " + fmtTime(i.published_at))))) : el("p", {class: "muted"}, "事件中暂无其他信息"));
    } catch (err) { showError(box, err); }
  }

  async function related(item) {
    try {
      const alerts = await get(`/api/alerts?item_id=${item.id}&limit=20`);
      document.getElementById("alerts").replaceChildren(alerts.data.length ? el("ul", {class: "plain"}, alerts.data.map(a => el("li", {},
        el("span", {class: "badge " + a.state}, YQ.ALERT_STATES[a.state] || a.state), " ",
        el("a", {href: "/alerts?id=" + a.id}, (a.annotations && a.annotations.summary) || a.rule)))) : el("p", {class: "muted"}, "无"));
    } catch (err) { document.getElementById("alerts").replaceChildren(el("p", {class: "muted"}, "预警未启用")); }
    try {
      const runs = await get(`/api/plans/runs?item_id=${item.id}`);
      document.getElementById("runs").replaceChildren(runs.data.length ? el("ul", {class: "plain"}, runs.data.map(r => el("li", {},
        el("a", {href: "/plans?run=" + r.id}, r.title || r.playbook_id), " ",
        el("span", {class: "muted"}, YQ.RUN_STATES[r.state] || r.state)))) : el("p", {class: "muted"}, "未启动预案"));
    } catch (err) { document.getElementById("runs").replaceChildren(el("p", {class: "muted"}, "预案未启用")); }
  }

  load();
})();
