// Shared by every page: safe DOM building (text nodes only: crawled text is never parsed as HTML), the JSON API with
// the CSRF header and Chinese errors, labels, times, highlighting of risk evidence, and charts when ECharts is there.
"use strict";
const YQ = (() => {
  const CHANNELS = {hotline: "12345热线", mailbox: "领导信箱", board: "留言板", weibo: "微博", wechat: "微信公众号", news: "新闻"};
  const LEVELS = {I: "I级 特别重大", II: "II级 重大", III: "III级 较大", IV: "IV级 一般"};
  const EMOTIONS = {anger: "愤怒", fear: "恐惧", sadness: "悲伤", disgust: "厌恶", happiness: "喜悦", surprise: "惊讶", neutral: "中性"};
  const POLARITY = {negative: "负面", positive: "正面", neutral: "中性"};
  const FEATURES = {emotion: "情绪", channel: "渠道", polarity: "负面倾向", engagement: "互动量", velocity: "传播速度",
    repeated: "重复反映", event_growth: "事件增长", recency: "时效衰减", reply_late: "答复超期", reply_missing: "未答复"};
  const ALERT_STATES = {firing: "待处理", acknowledged: "已确认", resolved: "已解决", muted: "已静默"};
  const SEVERITY = {critical: "严重", warning: "警告", info: "提示"};
  const STEP_STATES = {pending: "待办", in_progress: "进行中", awaiting_approval: "待审签", done: "已完成", skipped: "已跳过"};
  const RUN_STATES = {open: "进行中", closed: "已结束", cancelled: "已取消"};
  const SOURCE_STATES = {ok: "正常", degraded: "异常", failing: "失败", unknown: "未运行"};
  const STATUS_ZH = {400: "请求有误", 401: "请重新登录", 403: "无权执行此操作", 404: "未找到", 409: "当前状态不允许此操作",
    413: "内容过大", 422: "输入不完整或格式不对", 429: "请求过于频繁"};
  const caps = new Set([...document.body.classList].filter(c => c.startsWith("cap-")).map(c => c.slice(4)));

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "href") node.setAttribute("href", safeHref(v));
      else node.setAttribute(k, v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function safeHref(value) {  // only same-site paths and http(s) links; never javascript: or data:
    const text = String(value);
    if (text.startsWith("/") && !text.startsWith("//")) return text;
    try { const url = new URL(text); if (url.protocol === "http:" || url.protocol === "https:") return url.href; } catch (e) { /* not a URL */ }
    return "#";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(chineseError(status, body));
      this.status = status; this.body = body;
      this.detail = body && body.error ? String(body.error) : "";
    }
  }

  function chineseError(status, body) {
    const first = body && Array.isArray(body.errors) && body.errors[0];
    if (status === 400 && first && Array.isArray(first.loc) && first.loc.includes("q")) {
      const at = Number.isInteger(first.position) ? `（第 ${first.position + 1} 个字符附近）` : "";
      return `检索式有误${at}。可用：词语、"短语"、AND / OR / NOT（或 & | -词）、括号、词 NEAR/5 词`;
    }
    if (status === 400 && first && Array.isArray(first.loc) && (first.loc.includes("since") || first.loc.includes("until")))
      return "时间格式不对：请用 2026-12-01、2026-12-01 08:00 或 3天前";
    return (STATUS_ZH[status] || (status >= 500 ? "服务出错，请稍后再试" : "请求失败")) + `（${status}）`;
  }

  let csrf = null;
  async function csrfToken() {
    if (csrf === null) {
      const me = await api("GET", "/api/auth/me");
      csrf = me.csrf_token || "";
    }
    return csrf;
  }

  async function api(method, url, body) {
    const headers = {"Accept": "application/json"};
    if (method !== "GET") {
      headers["X-CSRF-Token"] = await csrfToken();
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, {method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (e) {
      throw new ApiError(0, {error: "network"});
    }
    if (response.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new ApiError(401, null);
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : null);
    return data;
  }
  const get = url => api("GET", url);

  function showError(target, err) {  // a failed load clears what was shown before: never stale results under an error
    const box = typeof target === "string" ? document.getElementById(target) : target;
    if (!box) return;
    box.replaceChildren(el("div", {class: "error", role: "alert", title: err.detail || ""}, err.message || String(err)));
  }

  function flash(text) {
    const box = document.getElementById("flash");
    box.textContent = text; box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.hidden = true; }, 3500);
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString("zh-CN", {timeZone: "Asia/Shanghai", hour12: false,
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.abs(seconds);
    const text = s >= 86400 ? `${(s / 86400).toFixed(1)} 天` : s >= 3600 ? `${(s / 3600).toFixed(1)} 小时` : `${Math.round(s / 60)} 分钟`;
    return text;
  }

  function countdown(due) {  // a live "剩余 / 超期" text for a deadline
    const node = el("span", {class: "countdown"});
    const tick = () => {
      const left = (new Date(due) - Date.now()) / 1000;
      node.textContent = left >= 0 ? `剩余 ${fmtDuration(left)}` : `已超期 ${fmtDuration(left)}`;
      node.classList.toggle("late", left < 0);
    };
    tick();
    setInterval(tick, 30000);
    return node;
  }

  function evidenceTerms(reasons) {  // the strings a risk score rests on, to mark in the text
    const terms = new Set();
    for (const r of reasons || []) {
      if (r.evidence) terms.add(r.evidence);
      if (String(r.feature).startsWith("terms:") && r.detail && r.detail.includes("："))
        for (const t of r.detail.split("：").slice(1).join("：").split("、")) if (t.trim()) terms.add(t.trim());
    }
    return [...terms].filter(t => t.length > 0).sort((a, b) => b.length - a.length);
  }

  function highlight(text, terms) {  // text nodes and <mark> nodes: the text is never parsed as HTML
    const out = document.createDocumentFragment();
    const source = String(text || "");
    if (!terms.length) { out.append(source); return out; }
    let pos = 0;
    while (pos < source.length) {
      let best = -1, bestTerm = "";
      for (const t of terms) {
        const at = source.indexOf(t, pos);
        if (at !== -1 && (best === -1 || at < best || (at === best && t.length > bestTerm.length))) { best = at; bestTerm = t; }
      }
      if (best === -1) break;
      if (best > pos) out.append(source.slice(pos, best));
      out.append(el("mark", {title: "风险依据"}, bestTerm));
      pos = best + bestTerm.length;
    }
    if (pos < source.length) out.append(source.slice(pos));
    return out;
  }

  function reasonList(reasons, max) {
    const list = el("ul", {class: "reasons"});
    const sorted = [...(reasons || [])].sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    for (const r of sorted.slice(0, max || sorted.length)) {
      const feature = String(r.feature);
      const label = feature.startsWith("terms:") ? "敏感词" : (FEATURES[feature] || "其他");
      const weight = Number(r.weight);
      list.append(el("li", {}, el("b", {}, `${weight >= 0 ? "+" : ""}${weight.toFixed(1)}`), " ",
        r.detail || label, r.evidence ? el("span", {}, " 「", el("mark", {}, r.evidence), "」") : null));
    }
    return list;
  }

  function gradeBadge(e) {
    if (!e || !e.risk_level) return el("span", {class: "badge"}, "未评级");
    const score = e.risk_score === null || e.risk_score === undefined ? "" : ` · ${Math.round(e.risk_score)}分`;
    return el("span", {class: "badge " + e.risk_level, title: "风险等级"}, (LEVELS[e.risk_level] || e.risk_level) + score);
  }

  function chart(node, option) {  // ECharts with canvas tooltips (richText): no HTML is built from data
    if (!window.echarts) { node.replaceChildren(el("p", {class: "muted"}, "图表组件未安装（运行 make 获取 ECharts）")); return null; }
    const instance = window.echarts.getInstanceByDom(node) || window.echarts.init(node, null, {renderer: "canvas"});
    option.tooltip = Object.assign({trigger: "axis", renderMode: "richText"}, option.tooltip || {});
    option.textStyle = {fontFamily: "WenQuanYi Zen Hei, Noto Sans CJK SC, sans-serif"};
    instance.setOption(option, true);
    if (!chart.bound) { window.addEventListener("resize", () => document.querySelectorAll(".chart").forEach(n => {
      const c = window.echarts.getInstanceByDom(n); if (c) c.resize(); })); chart.bound = true; }
    return instance;
  }

  function can(cap) { return caps.has(cap); }

  function fill(target, ...children) {  // replaceChildren, leaving out the parts a page did not have (null)
    const node = typeof target === "string" ? document.getElementById(target) : target;
    node.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined && c !== false));
    return node;
  }

  function names(x) { return Array.isArray(x) ? x : Object.keys(x || {}); }  // a list, or a {name: count} map

  function params(form) {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (String(v).trim()) p.set(k, String(v).trim());
    return p;
  }

  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/auth/logout"); } catch (e) { /* signed out anyway */ }
    location.assign("/login");
  });

  return {CHANNELS, LEVELS, EMOTIONS, POLARITY, ALERT_STATES, SEVERITY, STEP_STATES, RUN_STATES, SOURCE_STATES,
    el, api, get, showError, flash, fmtTime, fmtDuration, countdown, evidenceTerms, highlight, reasonList, gradeBadge,
    chart, can, params, names, fill, ApiError};
})();
