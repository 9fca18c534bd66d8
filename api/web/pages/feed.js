// 风险动态: the feed with every filter, evidence highlighted, live over SSE; filters live in the URL.
"use strict";
(() => {
  const {el, get, showError, flash, fmtTime, evidenceTerms, highlight, reasonList, gradeBadge, CHANNELS, EMOTIONS} = YQ;
  const form = document.getElementById("filters");
  const feed = document.getElementById("feed");
  const status = document.getElementById("feed-status");
  const more = document.getElementById("more");
  let nextCursor = null;
  let loading = 0;
  let sourceNames = {};

  function renderItem(item) {
    const e = item.enrichment || {};
    const terms = evidenceTerms(e.risk_reasons);
    const title = item.title || (item.content || "").slice(0, 40) || "（无标题）";
    const head = el("div", {class: "item-head"}, gradeBadge(e),
      el("span", {class: "tag"}, CHANNELS[item.channel] || item.channel),
      e.topic ? el("span", {class: "tag", title: "主题"}, e.topic) : null,
      e.emotion ? el("span", {class: "tag", title: "情绪"}, EMOTIONS[e.emotion] || e.emotion) : null,
      el("a", {class: "title", href: "/items/" + item.id}, highlight(title, terms)));
    const content = (item.content || "").slice(0, 300) + ((item.content || "").length > 300 ? "…" : "");
    const keywords = (e.keywords || []).slice(0, 6).map(k => el("span", {class: "kw"}, k));
    const meta = el("div", {class: "meta"}, `${fmtTime(item.published_at)} · ${sourceNames[item.source] || item.source}`,
      item.region ? ` · ${item.region}` : "", item.reply ? " · 已答复" : "",
      e.event_id && YQ.can("feed") ? [" · ", el("a", {href: "/events/" + encodeURIComponent(e.event_id)}, "所属事件")] : null);
    return el("li", {"data-id": item.id, class: "grade-" + (e.risk_level || "none")}, head,
      el("div", {class: "content"}, highlight(content, terms)),
      keywords.length ? el("div", {class: "item-head"}, "关键词：", keywords) : null,
      reasonList(e.risk_reasons, 3), meta);
  }

  function query(append) {
    const p = YQ.params(form);
    if (p.get("until")) p.set("until", p.get("until") + " 23:59");
    p.set("limit", "30");
    if (append && nextCursor) p.set("cursor", nextCursor);
    return p;
  }

  async function load(append = false) {
    const mine = ++loading;
    const p = query(append);
    const shown = YQ.params(form);
    history.replaceState(null, "", shown.toString() ? "?" + shown.toString() : location.pathname);
    try {
      const page = await get("/api/items?" + p.toString());
      if (mine !== loading) return;
      status.replaceChildren();
      if (!append) feed.replaceChildren();
      for (const item of page.data) feed.append(renderItem(item));
      if (!append && !page.data.length) feed.append(el("li", {class: "muted"},
        p.get("since") ? "这段时间内没有符合条件的信息。可在时间范围中选择“全部历史”。" : "没有符合条件的信息。"));
      document.getElementById("count").textContent = `共 ${page.count}${page.count_exact ? "" : "+"} 条` +
        (page.sorted_among ? `（按风险排序的是最新的 ${page.sorted_among} 条匹配）` : "");
      nextCursor = page.next_cursor;
      more.hidden = !nextCursor;
    } catch (err) {
      if (mine !== loading) return;
      feed.replaceChildren();  // never leave the previous results under an error
      more.hidden = true;
      document.getElementById("count").textContent = "";
      showError(status, err);
    }
  }

  function fill(select, values, labels) {
    for (const v of values) select.append(el("option", {value: v}, (labels && labels[v]) || v));
  }

  async function facets() {
    try {
      const f = await get("/api/feed/facets");
      sourceNames = Object.fromEntries(f.sources.map(s => [s.id, s.name]));
      fill(document.getElementById("channel"), f.channels, CHANNELS);
      fill(document.getElementById("source"), f.sources.map(s => s.id), Object.fromEntries(f.sources.map(s => [s.id, s.name])));
      fill(document.getElementById("topic"), f.topics);
      fill(document.getElementById("emotion"), f.emotions, EMOTIONS);
      fill(document.getElementById("scheme"), f.schemes.map(s => s.name), Object.fromEntries(f.schemes.map(s => [s.name, s.label])));
      for (const r of f.regions) document.getElementById("regions").append(el("option", {value: r}));
    } catch (err) { /* the filters stay as free choices */ }
    const url = new URLSearchParams(location.search);  // a shared link or a reload keeps its filters
    for (const [k, v] of url.entries()) if (form.elements[k]) form.elements[k].value = v;
    if (["channel", "source", "topic", "emotion", "scheme", "region", "until"].some(k => url.get(k)))
      document.getElementById("more-filters").open = true;  // a link with those filters shows them
    if (url.toString() && !url.has("since")) form.elements.since.value = "";
  }

  async function side() {
    try {
      const alerts = await get("/api/alerts?state=firing&limit=5");
      const list = document.getElementById("alerts");
      list.replaceChildren(...(alerts.data.length ? alerts.data.map(a => el("li", {},
        el("span", {class: "badge " + a.severity}, YQ.SEVERITY[a.severity] || a.severity), " ",
        a.item_id ? el("a", {href: "/items/" + a.item_id}, (a.annotations && a.annotations.summary) || a.rule)
          : el("a", {href: "/alerts"}, (a.annotations && a.annotations.summary) || a.rule),
        el("div", {class: "meta"}, fmtTime(a.starts_at)))) : [el("li", {class: "muted"}, "暂无待处理预警")]));
    } catch (err) { document.getElementById("alerts").replaceChildren(el("li", {class: "muted"}, "预警未启用")); }
    try {
      const hot = await get("/api/events/hot?days=7&limit=5");
      const list = document.getElementById("events");
      list.replaceChildren(...(hot.data.length ? hot.data.map(ev => el("li", {},
        el("a", {href: "/events/" + encodeURIComponent(ev.id)}, ev.title || ev.id),
        el("div", {class: "meta"}, `热度 ${Math.round(ev.heat || 0)} · ${ev.volume || ev.size || 0} 条`))) :
        [el("li", {class: "muted"}, "近7天暂无热点事件")]));
    } catch (err) { document.getElementById("events").replaceChildren(el("li", {class: "muted"}, "暂无")); }
  }

  function live() {
    if (!window.EventSource) return;
    const dot = document.getElementById("live");
    const stream = new EventSource("/api/feed/stream");
    let timer = null;
    stream.onopen = () => { dot.classList.add("on"); dot.title = "实时更新：已连接"; };
    stream.onerror = () => { dot.classList.remove("on"); dot.title = "实时更新：重连中"; };
    stream.addEventListener("items", ev => {
      let n = 0;
      try { n = JSON.parse(ev.data).stored || 0; } catch (e) { /* count unknown */ }
      if (n) flash(`新到 ${n} 条信息`);
      clearTimeout(timer);
      timer = setTimeout(() => { if (!nextCursor || feed.children.length <= 30) load(); side(); }, 500);
    });
    stream.addEventListener("alerts", () => side());  // one connection for both: a browser allows six per host
  }

  form.addEventListener("submit", ev => { ev.preventDefault(); load(); });
  form.addEventListener("change", ev => { if (ev.target.tagName === "SELECT" || ev.target.type === "date") load(); });
  document.getElementById("reset").addEventListener("click", () => { form.reset(); load(); });
  more.addEventListener("click", () => load(true));
  facets().then(() => load());
  side();
  live();
})();
