// 设置: monitoring schemes and alert rules with dry-run counts; users and tokens for admins.
"use strict";
(() => {
  const {el, get, api, showError, flash, fmtTime} = YQ;
  const words = v => String(v || "").split(/[\s,，、]+/).filter(Boolean);
  const ROLE = {press_office: "新闻办", staff: "工作人员", manager: "管理者", admin: "管理员", ingest: "接入"};

  async function schemes() {
    const box = document.getElementById("schemes");
    try {
      const s = await get("/api/schemes");
      const rows = s.data.map(spec => {
        const count = el("td", {class: "dry-run"}, "计算中…");
        api("POST", "/api/schemes/dry-run", {scheme: spec, days: 7})
          .then(r => { count.textContent = `${r.matched} / ${r.scanned}`; }).catch(err => { count.textContent = err.message; });
        return el("tr", {}, el("td", {}, spec.name),
          el("td", {}, spec.expression || [["地域", spec.region], ["主体", spec.subject], ["事件", spec.event], ["排除", spec.exclude]]
            .filter(([, v]) => (v || []).length).map(([k, v]) => `${k}：${v.join("、")}`).join("；")), count);
      });
      box.replaceChildren(rows.length ? el("table", {}, el("tr", {}, el("th", {}, "方案"), el("th", {}, "条件"), el("th", {}, "近7天命中 / 扫描")), rows)
        : el("p", {class: "muted"}, "尚未配置监测方案（配置文件 analysis.schemes）"));
    } catch (err) { showError(box, err); }
  }

  async function rules() {
    const box = document.getElementById("rules");
    try {
      const status = await get("/api/alerts/status");
      const rows = status.rules.map(name => {
        const count = el("td", {class: "dry-run"}, "计算中…");
        api("POST", "/api/alerts/dry-run", {rule: name, days: 7})
          .then(r => { count.textContent = `${r.would_alert}（扫描 ${r.items_scanned} 条）`; }).catch(err => { count.textContent = err.message; });
        return el("tr", {}, el("td", {}, name), count);
      });
      box.replaceChildren(rows.length ? el("table", {}, el("tr", {}, el("th", {}, "规则"), el("th", {}, "近7天会触发")), rows)
        : el("p", {class: "muted"}, "没有预警规则"));
    } catch (err) { box.replaceChildren(el("p", {class: "muted"}, err.status === 404 ? "预警未启用" : err.message)); }
  }

  document.getElementById("scheme-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const scheme = {name: f.get("name"), region: words(f.get("region")), subject: words(f.get("subject")),
      event: words(f.get("event")), exclude: words(f.get("exclude"))};
    if (String(f.get("expression")).trim()) scheme.expression = String(f.get("expression")).trim();
    const out = document.getElementById("scheme-result");
    try {
      const r = await api("POST", "/api/schemes/dry-run", {scheme, days: Number(f.get("days"))});
      out.replaceChildren(el("p", {}, `“${r.scheme}”命中 ${r.matched} 条（共扫描 ${r.scanned} 条）。例：`,
        (r.example_ids || []).slice(0, 10).map(i => [el("a", {href: "/items/" + i}, "#" + i), " "])));
    } catch (err) { showError(out, err); }
  });

  async function users() {
    if (!YQ.can("admin")) return;
    try {
      const u = await get("/api/access/users");
      document.getElementById("users").replaceChildren(el("table", {}, el("tr", {}, ["用户", "角色", "属地", "状态"].map(h => el("th", {}, h))),
        u.data.map(x => el("tr", {}, el("td", {}, x.name), el("td", {}, x.roles.map(r => ROLE[r] || r).join("、")),
          el("td", {}, (x.regions || []).join("、") || "全部"), el("td", {}, x.disabled ? "停用" : x.locked ? "已锁定" : "正常")))));
      const t = await get("/api/access/tokens");
      document.getElementById("tokens").replaceChildren(el("table", {}, el("tr", {}, ["名称", "角色", "信息源", "最近使用", "状态", ""].map(h => el("th", {}, h))),
        t.data.map(x => el("tr", {}, el("td", {}, x.name), el("td", {}, ROLE[x.role] || x.role), el("td", {}, (x.sources || []).join("、")),
          el("td", {}, x.last_used_ts ? fmtTime(new Date(x.last_used_ts * 1000).toISOString()) : "从未"),
          el("td", {}, x.active ? "有效" : x.revoked ? "已吊销" : "已过期"),
          el("td", {}, x.active ? el("button", {type: "button", onclick: async () => {
            try { await api("DELETE", `/api/access/tokens/${x.id}`); flash("已吊销令牌：" + x.name); users(); } catch (err) { flash(err.message); }
          }}, "吊销") : "")))));
    } catch (err) { showError("users", err); }
  }

  document.getElementById("user-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("POST", "/api/access/users", {username: f.get("username"), password: f.get("password"), roles: [f.get("role")],
        regions: words(f.get("regions"))});
      flash("已新建用户：" + f.get("username")); ev.target.reset(); users();
    } catch (err) { flash(err.message); }
  });
  document.getElementById("token-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = {name: f.get("name"), role: f.get("role"), sources: words(f.get("sources"))};
    if (f.get("expires_days")) body.expires_days = Number(f.get("expires_days"));
    try {
      const t = await api("POST", "/api/access/tokens", body);
      document.getElementById("new-token").replaceChildren(el("p", {}, "令牌只显示这一次，请立即保存：", el("code", {}, t.token)));
      ev.target.reset(); users();
    } catch (err) { flash(err.message); }
  });

  schemes();
  rules();
  users();
})();
