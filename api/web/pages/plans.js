// 处置: plan runs with their steps, owners and countdowns; start, complete with evidence, submit and sign (审签).
"use strict";
(() => {
  const {el, get, api, showError, flash, fmtTime, countdown, STEP_STATES, RUN_STATES} = YQ;
  let state = "open";
  let roles = {};
  const box = document.getElementById("runs");
  const only = new URLSearchParams(location.search).get("run");

  // The plan service's refusals (playbooks/runs.py), said in Chinese; anything else keeps the generic message.
  const REFUSALS = [
    [/needs evidence|required evidence missing/, "缺少本步骤要求的证据，请先添加"],
    [/does not hold the role/, "您不在负责此步骤的角色中（预案角色成员见配置 playbooks.roles）"],
    [/already signed this statement/, "同一轮审签中您已签过，需由另一人审签"],
    [/follows step/, "需先完成前一步骤"],
    [/needs approval/, "此步骤需审签，请提交送审"],
    [/rejecting a statement needs a comment/, "退回时请填写意见"],
    [/a link must be an http/, "链接须以 http:// 或 https:// 开头"],
    [/text evidence cannot be empty/, "请填写证据内容"],
    [/larger than the limit|bytes; at most/, "文件过大"],
    [/nothing can change any more/, "该处置已结束，不能再修改"],
    [/cannot become|not awaiting approval|evidence can no longer be added/, "步骤状态已变化，请刷新后再试"],
  ];
  function refusal(err) {
    for (const [re, zh] of REFUSALS) if (re.test(err.detail || "")) return zh;
    return err.message;
  }
  async function act(call, done) {
    try { await call(); flash(done); load(); } catch (err) { flash(refusal(err)); load(); }
  }

  function evidenceForm(run, step) {
    const kind = el("select", {class: "evidence-kind"}, el("option", {value: "text"}, "文字说明"), el("option", {value: "link"}, "链接"),
      el("option", {value: "file"}, "文件"));
    const value = el("input", {class: "evidence-value", placeholder: "处置情况 / 发布链接", maxlength: "5000"});
    const file = el("input", {type: "file", class: "evidence-file", hidden: "hidden"});
    kind.addEventListener("change", () => { file.hidden = kind.value !== "file"; value.hidden = kind.value === "file"; });
    const needsApproval = (step.approval || []).length > 0;
    async function addEvidence() {
      const body = {kind: kind.value};
      if (kind.value === "file") {
        const f = file.files[0];
        if (!f) throw new YQ.ApiError(422, null);
        const bytes = new Uint8Array(await f.arrayBuffer());
        let bin = ""; for (const b of bytes) bin += String.fromCharCode(b);
        Object.assign(body, {content_b64: btoa(bin), filename: f.name, media_type: f.type || "application/octet-stream"});
      } else {
        if (!value.value.trim()) { flash("请填写证据内容"); throw new Error("请填写证据内容"); }
        body.value = value.value.trim();
      }
      await api("POST", `/api/plans/runs/${run.id}/steps/${encodeURIComponent(step.step_id)}/evidence`, body);
    }
    return el("form", {class: "inline-form", onsubmit: ev => {
      ev.preventDefault();
      act(async () => {
        await addEvidence();
        await api("POST", `/api/plans/runs/${run.id}/steps/${encodeURIComponent(step.step_id)}/transition`,
          {to: needsApproval ? "awaiting_approval" : "done"});
      }, needsApproval ? "已提交审签" : "步骤已完成");
    }}, "证据：", kind, value, file, el("button", {type: "submit", class: "complete"}, needsApproval ? "提交证据并送审" : "提交证据并完成"),
      el("button", {type: "button", onclick: () => act(addEvidence, "证据已添加")}, "仅添加证据"));
  }

  function approvalForm(run, step) {
    const comment = el("input", {placeholder: "审签意见（退回时必填）", maxlength: "2000"});
    const decide = decision => act(() => api("POST", `/api/plans/runs/${run.id}/steps/${encodeURIComponent(step.step_id)}/approvals`,
      {decision, comment: comment.value}), decision === "approve" ? "已同意" : "已退回");
    return el("div", {class: "inline-form"}, comment, el("button", {type: "button", class: "approve", onclick: () => decide("approve")}, "同意"),
      el("button", {type: "button", onclick: () => decide("reject")}, "退回"));
  }

  function renderStep(run, step) {
    const finished = step.state === "done" || step.state === "skipped";
    const cls = "step " + step.state + (step.overdue ? " overdue" : "");
    const approvals = (step.approvals || []).filter(a => a.decision !== "pending");
    const node = el("div", {class: cls, "data-step": step.step_id},
      el("div", {class: "item-head"}, el("span", {class: "badge " + (step.overdue ? "overdue" : step.state)}, STEP_STATES[step.state] || step.state),
        el("b", {}, step.title), step.statement ? el("span", {class: "tag"}, "口径需审签") : null),
      el("div", {class: "meta"}, `负责：${step.assignee || roles[step.role] || step.role || "—"}`,
        step.due ? ` · 时限 ${fmtTime(step.due)}${step.calendar === "fallback" ? "（按周一至周五估算）" : ""} · ` : "",
        step.due && !finished ? countdown(step.due) : null,
        finished && step.met !== null && step.met !== undefined ? (step.met ? "按时完成" : "超时完成") : "",
        step.waiting_for ? ` · 等待：${(run.steps.find(x => x.step_id === step.waiting_for) || {}).title || step.waiting_for}` : "", step.basis ? ` · 依据：${step.basis}` : ""),
      (step.evidence || []).length ? el("ul", {class: "reasons"}, step.evidence.map(ev => el("li", {},
        `${ev.actor || ""} ${fmtTime(ev.at)} `, ev.kind === "link" ? el("a", {href: ev.value, rel: "noopener noreferrer"}, ev.value)
          : ev.kind === "file" ? el("a", {href: `/api/plans/runs/${run.id}/evidence/${ev.id}/file`}, "附件") : ev.value))) : null,
      approvals.length ? el("div", {class: "meta"}, "审签：", approvals.map(a => `${roles[a.role] || a.role} ${a.actor || ""} ${a.decision === "approve" ? "同意" : "退回"}`).join("；")) : null);
    if (run.state === "open" && YQ.can("plan")) {
      if (step.state === "pending") node.append(el("div", {class: "actions"}, el("button", {type: "button", class: "start", onclick: () =>
        act(() => api("POST", `/api/plans/runs/${run.id}/steps/${encodeURIComponent(step.step_id)}/transition`, {to: "in_progress"}), "已开始")}, "开始")));
      if (step.state === "in_progress") node.append(evidenceForm(run, step));
    }
    if (run.state === "open" && step.state === "awaiting_approval" && (YQ.can("plan") || YQ.can("review"))) node.append(approvalForm(run, step));
    return node;
  }

  function renderRun(run) {
    const subject = run.event_id && YQ.can("feed") ? el("a", {href: "/events/" + encodeURIComponent(run.event_id)}, "事件")
      : run.item_id ? el("a", {href: "/items/" + run.item_id}, "信息 #" + run.item_id) : null;
    return el("div", {class: "card", "data-run": run.id},
      el("div", {class: "item-head"}, el("span", {class: "badge " + (run.state === "open" ? "II" : "done")}, RUN_STATES[run.state] || run.state),
        el("b", {class: "title"}, run.title || run.playbook_id), el("span", {class: "tag"}, run.playbook_id)),
      el("div", {class: "meta"}, `启动 ${fmtTime(run.started_at)}（${run.trigger === "manual" ? "人工" : "自动"}，${run.started_by}）`,
        run.region ? ` · ${run.region}` : "", run.department ? ` · ${run.department}` : "",
        run.first_response_at ? ` · 首次回应 ${fmtTime(run.first_response_at)}` : "", subject ? [" · ", subject] : null,
        YQ.can("review") ? [" · ", el("a", {href: "/review?run=" + run.id}, "复盘")] : null),
      (run.steps || []).map(s => renderStep(run, s)));
  }

  async function load() {
    try {
      let runs;
      if (only) runs = {data: [await get(`/api/plans/runs/${encodeURIComponent(only)}`)], count: 1};
      else runs = await get("/api/board/runs?limit=30" + (state ? "&state=" + state : ""));
      roles = runs.roles || roles;
      box.replaceChildren(...(runs.data.length ? runs.data.map(renderRun) : [el("p", {class: "muted"}, "没有这类处置")]));
      document.getElementById("count").textContent = `共 ${runs.count} 个`;
    } catch (err) { showError(box, err); }
  }
  document.getElementById("tabs").addEventListener("click", ev => {
    const b = ev.target.closest("button"); if (!b) return;
    state = b.dataset.state;
    for (const x of document.querySelectorAll("#tabs button")) x.setAttribute("aria-pressed", String(x === b));
    load();
  });
  load();
})();
