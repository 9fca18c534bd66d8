// The press office's page: a risk feed with search, plus alerts, hot events and source health when available.
"use strict";
const CHANNELS = {hotline: "12345热线", mailbox: "领导信箱", board: "留言板", weibo: "微博", wechat: "微信", news: "新闻"};
const LEVELS = {I: "I 特别重大", II: "II 重大", III: "III 较大", IV: "IV 一般"};
let nextCursor = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function params() {
  const form = new FormData(document.getElementById("search"));
  const p = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v) p.set(k, v);
  p.set("limit", "30");
  return p;
}

function fmtTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString("zh-CN", {timeZone: "Asia/Shanghai", hour12: false});
}

function renderItem(item) {
  const e = item.enrichment || {};
  const head = el("div", {class: "item-head"},
    e.risk_level ? el("span", {class: "badge " + e.risk_level}, LEVELS[e.risk_level] || e.risk_level) : null,
    e.risk_score !== null && e.risk_score !== undefined ? el("span", {class: "tag"}, "风险 " + Math.round(e.risk_score)) : null,
    el("span", {class: "tag"}, CHANNELS[item.channel] || item.channel),
    e.topic ? el("span", {class: "tag"}, e.topic) : null,
    e.emotion ? el("span", {class: "tag"}, e.emotion) : null,
    el("a", {class: "title", href: "/api/items/" + item.id}, item.title || item.content.slice(0, 40)));
  const reasons = el("ul", {class: "reasons"});
  for (const r of (e.risk_reasons || []).slice(0, 4)) {
    reasons.append(el("li", {}, `${r.feature} +${Number(r.weight).toFixed(1)}${r.detail ? "：" + r.detail : ""}${r.evidence ? "「" + r.evidence + "」" : ""}`));
  }
  const meta = el("div", {class: "meta"},
    `${fmtTime(item.published_at)} · ${item.source}` + (item.region ? ` · ${item.region}` : "") +
    (item.reply ? " · 已答复" : "") + (e.event_id ? ` · 事件 ${e.event_id}` : ""));
  return el("li", {"data-id": item.id}, head, el("div", {class: "content"}, item.content.slice(0, 240)), reasons, meta);
}

async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin"});
  if (response.status === 401) {  // the session ended: sign in again, then come back here
    location.assign("/login?next=" + encodeURIComponent(location.pathname));
    throw new Error("请重新登录");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function loadFeed(append = false) {
  const p = params();
  if (append && nextCursor) p.set("cursor", nextCursor);
  const error = document.getElementById("error");
  try {
    const page = await getJSON("/api/items?" + p.toString());
    error.hidden = true;
    const feed = document.getElementById("feed");
    if (!append) feed.replaceChildren();
    for (const item of page.data) feed.append(renderItem(item));
    document.getElementById("count").textContent = `共 ${page.count} 条`;
    nextCursor = page.next_cursor;
    document.getElementById("more").hidden = !nextCursor;
  } catch (err) {
    error.textContent = "检索出错：" + err.message;
    error.hidden = false;
  }
}

async function loadSide(url, target, render) {
  try {
    const body = await getJSON(url);
    const rows = (body.data || []).slice(0, 10);
    const list = document.getElementById(target);
    list.replaceChildren(...(rows.length ? rows.map(render) : [el("li", {class: "muted"}, "暂无")]));
  } catch (err) { /* that part of the service is not enabled: keep the placeholder */ }
}

function loadPanels() {
  const SEVERITY = {critical: "I", warning: "II", info: "IV"};
  loadSide("/api/alerts?limit=10", "alerts", a => el("li", {},
    el("span", {class: "badge " + (SEVERITY[a.severity] || "")}, a.severity || a.state || "预警"), " ",
    (a.annotations && a.annotations.summary) || a.summary || a.rule || a.id, " ",
    el("span", {class: "muted"}, a.state === "acknowledged" ? "已确认" : "")));
  loadSide("/api/events/hot", "events", ev => el("li", {}, ev.title || ev.id, " ",
    el("span", {class: "muted"}, `热度 ${Math.round(ev.heat || ev.heat_index || 0)} · ${ev.volume || ev.size || 0} 条`)));
  loadSide("/api/sources", "sources", s => el("li", {}, s.name || s.source || s.id, " ",
    el("span", {class: "state-" + (s.state || "ok")}, s.state || ""), " ",
    el("span", {class: "muted"}, s.last_success ? "最近成功 " + fmtTime(s.last_success) : "")));
}

function subscribe() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/alerts/stream");
  const dot = document.getElementById("live");
  source.onopen = () => dot.classList.add("on");
  source.onerror = () => dot.classList.remove("on");
  source.onmessage = () => { loadFeed(); loadPanels(); };
}

document.getElementById("search").addEventListener("submit", ev => { ev.preventDefault(); loadFeed(); });
document.getElementById("more").addEventListener("click", () => loadFeed(true));
loadFeed();
loadPanels();
subscribe();
setInterval(() => { if (!document.hidden) { loadPanels(); } }, 30000);
