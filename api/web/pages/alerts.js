// 预警: the inbox by state; acknowledge / resolve (responders), silence with a reason and an expiry (admins).
"use strict";
(() => {
  const {el, get, api, showError, flash, fmtTime, ALERT_STATES, SEVERITY} = YQ;
  let state = new URLSearchParams(location.search).has("id") ? "" : "firing";
  let before = null;
  const list = document.getElementById("alerts");
  const LABELS = {source: "信息源", channel: "渠道", region: "属地", topic: "主题", department: "部门", kind: "类型", rule: "规则"};
  const KINDS = {item: "单条信息", event: "事件", spike: "突增", deadline: "处置时限", source_health: "信息源异常"};
  const VALUES = {channel: YQ.CHANNELS, kind: KINDS};

  function actionForm(a) {
    const box = el("div", {class: "actions"});
    const comment = el("input", {placeholder: "备注（可选）", maxlength: "2000", class: "comment"});
    const act = (verb, label) => el("button", {type: "button", class: verb, onclick: async () => {
      try { await api("POST", `/api/alerts/${a.id}/${verb}`, {comment: comment.value}); flash(label + "：" + a.id); load(); }
      catch (err) { flash(err.message); }
    }}, label);
    if (YQ.can("respond") && a.state === "firing") box.append(comment, act("ack", "确认"), act("resolve", "解决"));
    else if (YQ.can("respond") && a.state === "acknowledged") box.append(comment, act("resolve", "解决"));
    if (YQ.can("admin") && a.state !== "resolved") box.append(silenceForm(a));
    return box.children.length ? box : null;
  }

  function silenceForm(a) {
    const reason = el("input", {placeholder: "静默原因（必填）", maxlength: "2000", required: "required", class: "silence-reason"});
    const duration = el("select", {class: "silence-duration"}, [["2h", "2小时"], ["1d", "1天"], ["3d", "3天"], ["7d", "7天"]]
      .map(([v, t]) => el("option", {value: v}, t)));
    const scope = el("select", {}, el("option", {value: "rule"}, "此规则全部"),
      a.event_id ? el("option", {value: "event"}, "此规则·此事件") : null);
    const form = el("form", {class: "inline-form", onsubmit: async ev => {
      ev.preventDefault();
      const matchers = {rule: a.rule};
      if (scope.value === "event" && a.event_id) matchers.event_id = a.event_id;
      try {
        await api("POST", "/api/alerts/silences", {matchers, reason: reason.value, duration: duration.value});
        flash("已静默规则：" + a.rule); load(); silences();
      } catch (err) { flash(err.message); }
    }}, "静默：", scope, duration, reason, el("button", {type: "submit"}, "静默"));
    return form;
  }

  function render(a) {
    const ann = a.annotations || {};
    const labels = Object.entries(a.labels || {}).filter(([k, v]) => LABELS[k] && k !== "rule" && v)
      .map(([k, v]) => [k, (VALUES[k] && VALUES[k][v]) || v]);
    return el("li", {"data-id": a.id, "data-state": a.state},
      el("div", {class: "item-head"}, el("span", {class: "badge " + a.severity}, SEVERITY[a.severity] || a.severity),
        el("span", {class: "badge " + a.state}, ALERT_STATES[a.state] || a.state),
        a.muted_by ? el("span", {class: "tag"}, "已静默") : null,
        el("b", {class: "title"}, ann.summary || a.rule)),
      ann.description ? el("div", {class: "content"}, ann.description) : null,
      el("div", {class: "item-head"}, labels.map(([k, v]) => el("span", {class: "tag"}, `${LABELS[k]}：${v}`))),
      el("div", {class: "meta"}, `规则 ${a.rule} · 开始 ${fmtTime(a.starts_at)}`,
        a.acked_by ? ` · ${a.acked_by} 于 ${fmtTime(a.acked_at)} 确认` : "",
        a.resolved_by ? ` · ${a.resolved_by} 于 ${fmtTime(a.resolved_at)} 解决` : "", a.comment ? ` · 备注：${a.comment}` : "",
        a.item_id ? [" · ", el("a", {href: "/items/" + a.item_id}, "查看信息")] : null,
        a.event_id && YQ.can("feed") ? [" · ", el("a", {href: "/events/" + encodeURIComponent(a.event_id)}, "查看事件")] : null),
      actionForm(a));
  }

  async function load(append = false) {
    const p = new URLSearchParams({limit: "30"});
    if (state) p.set("state", state);
    if (append && before) p.set("before_id", before);
    try {
      const only = new URLSearchParams(location.search).get("id");
      const page = only && !append ? {data: [await get(`/api/alerts/${encodeURIComponent(only)}`)], count: 1} : await get("/api/alerts?" + p);
      if (!append) list.replaceChildren();
      list.append(...page.data.map(render));
      if (!page.data.length && !append) list.append(el("li", {class: "muted"}, "没有这类预警"));
      document.getElementById("count").textContent = `共 ${page.count} 条`;
      before = page.next_before_id || null;
      document.getElementById("more").hidden = !before;
    } catch (err) { list.replaceChildren(); showError(list, err); }
  }

  async function silences() {
    if (!YQ.can("admin")) return;
    const box = document.getElementById("silences");
    try {
      const s = await get("/api/alerts/silences");
      box.replaceChildren(s.data.length ? el("ul", {class: "plain"}, s.data.map(x => el("li", {},
        Object.entries(x.matchers || {}).map(([k, v]) => typeof v === "object" ? JSON.stringify(v) : `${k}=${v}`).join(", "),
        ` · 原因：${x.reason} · ${x.owner} · 至 ${fmtTime(x.ends_at)} `,
        el("button", {type: "button", onclick: async () => {
          try { await api("DELETE", `/api/alerts/silences/${x.id}`); flash("已解除静默"); silences(); } catch (err) { flash(err.message); }
        }}, "解除")))) : el("p", {class: "muted"}, "没有生效的静默"));
    } catch (err) { showError(box, err); }
  }

  document.getElementById("tabs").addEventListener("click", ev => {
    const button = ev.target.closest("button");
    if (!button) return;
    state = button.dataset.state;
    history.replaceState(null, "", location.pathname);
    for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-pressed", String(b === button));
    load();
  });
  document.getElementById("more").addEventListener("click", () => load(true));
  if (window.EventSource) {
    const stream = new EventSource("/api/alerts/stream");
    const dot = document.getElementById("live");
    stream.onopen = () => dot.classList.add("on");
    stream.onerror = () => dot.classList.remove("on");
    stream.addEventListener("notification", () => load());
    stream.addEventListener("alert_state", () => load());
  }
  if (!state) for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-pressed", String(b.dataset.state === ""));
  load();
  silences();
})();
