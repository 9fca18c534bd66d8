"""The step state machine: every allowed and forbidden transition, approvals, evidence, extensions, and that a
refused change leaves nothing behind."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from core.errors import InvalidTransition, PermissionDenied, PlaybookError, StorageError
from playbooks.runs import STEP_STATES, TRANSITIONS
from playbooks.store import plan_audit, plan_runs, plan_steps

PLANS = Path(__file__).with_name("fixtures") / "plans"


@pytest.fixture
def h(make_harness):  # noqa: ANN001, ANN201
    return make_harness(dir=str(PLANS), auto_start=False)


def run_of(h) -> int:  # noqa: ANN001
    return h.plans.runs.start_manual("t", actor="tester", title="测试")["id"]


def step(h, run_id: int, step_id: str) -> dict:  # noqa: ANN001
    return next(s for s in h.plans.runs.get(run_id)["steps"] if s["step_id"] == step_id)


def force(h, run_id: int, step_id: str, state: str) -> None:  # noqa: ANN001
    with h.service.store.write() as conn:
        conn.execute(update(plan_steps).where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)
                     .values(state=state))


def audit_count(h, run_id: int) -> int:  # noqa: ANN001
    with h.service.store.read() as conn:
        return len(conn.execute(select(plan_audit.c.id).where(plan_audit.c.run_id == run_id)).all())


@pytest.mark.parametrize(("src", "dst"), [(a, b) for a in STEP_STATES for b in STEP_STATES])
def test_every_transition_of_a_plain_step(h, src: str, dst: str) -> None:  # noqa: ANN001
    run_id = run_of(h)
    force(h, run_id, "plain", src)
    before = audit_count(h, run_id)
    action = TRANSITIONS.get((src, dst))
    if action in ("start", "complete", "skip"):
        out = h.plans.runs.transition(run_id, "plain", dst, actor="anyone", reason="不需要" if action == "skip" else "")
        assert next(s for s in out["steps"] if s["step_id"] == "plain")["state"] == dst
        assert audit_count(h, run_id) == before + 1
    else:
        # Not in the table, or an entry a plain step cannot take (submit needs an approval chain; approve and reject
        # go through approvals): refused with 409, nothing written.
        with pytest.raises(InvalidTransition) as err:
            h.plans.runs.transition(run_id, "plain", dst, actor="anyone", reason="x")
        assert err.value.status == 409 and err.value.errors[0]["loc"] == ["to"]
        assert step(h, run_id, "plain")["state"] == src
        assert audit_count(h, run_id) == before


@pytest.mark.parametrize(("src", "dst"), [(a, b) for a in STEP_STATES for b in STEP_STATES])
def test_every_transition_of_a_signed_step(h, src: str, dst: str) -> None:  # noqa: ANN001
    run_id = run_of(h)
    runs = h.plans.runs
    if src in ("in_progress", "awaiting_approval"):  # reached the real way, so the approval round exists
        runs.transition(run_id, "signed", "in_progress", actor="press_a")
    if src == "awaiting_approval":
        runs.transition(run_id, "signed", "awaiting_approval", actor="drafter_a")
    if src in ("done", "skipped"):
        force(h, run_id, "signed", src)
    action = TRANSITIONS.get((src, dst))
    if action == "start" or action == "skip":
        runs.transition(run_id, "signed", dst, actor="press_a", reason="演练")
    elif action == "submit":
        runs.transition(run_id, "signed", dst, actor="drafter_a")
    elif action == "reject":
        runs.reject(run_id, "signed", actor="reviewer_a", comment="改")
    elif action == "approve":  # the chain: reviewer, then leader
        runs.approve(run_id, "signed", actor="reviewer_a")
        assert step(h, run_id, "signed")["state"] == "awaiting_approval"
        runs.approve(run_id, "signed", actor="leader_a")
    else:
        with pytest.raises(InvalidTransition):
            runs.transition(run_id, "signed", dst, actor="press_a", reason="x")
        assert step(h, run_id, "signed")["state"] == src
        return
    assert step(h, run_id, "signed")["state"] == dst


def test_unknown_state_and_skip_without_reason(h) -> None:  # noqa: ANN001
    run_id = run_of(h)
    with pytest.raises(PlaybookError, match="unknown state"):
        h.plans.runs.transition(run_id, "plain", "finished", actor="a")
    with pytest.raises(PlaybookError) as err:
        h.plans.runs.transition(run_id, "plain", "skipped", actor="a")
    assert err.value.errors[0]["loc"] == ["reason"]
    with pytest.raises(InvalidTransition, match="cannot be skipped"):
        h.plans.runs.transition(run_id, "proof", "skipped", actor="a", reason="x")


def test_approval_chain_with_roles_four_eyes_and_rejection(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    run_id = run_of(h)
    with pytest.raises(PermissionDenied):  # press_office has members; "anyone" is not one
        runs.transition(run_id, "signed", "in_progress", actor="anyone")
    runs.transition(run_id, "signed", "in_progress", actor="press_b")
    with pytest.raises(InvalidTransition, match="needs approval"):
        runs.transition(run_id, "signed", "done", actor="press_b")
    with pytest.raises(PermissionDenied) as err:  # only a drafter submits
        runs.transition(run_id, "signed", "awaiting_approval", actor="press_b")
    assert err.value.status == 403 and err.value.errors[0]["loc"] == ["actor"]
    runs.transition(run_id, "signed", "awaiting_approval", actor="press_a", reason="初稿")
    with pytest.raises(InvalidTransition, match="approval endpoint"):
        runs.transition(run_id, "signed", "done", actor="leader_a")
    with pytest.raises(PermissionDenied):  # the reviewer signs next, not the leader
        runs.approve(run_id, "signed", actor="leader_a")
    with pytest.raises(PermissionDenied, match="already signed"):  # press_a holds reviewer too, but drafted it
        runs.approve(run_id, "signed", actor="press_a")
    with pytest.raises(PlaybookError, match="comment"):
        runs.reject(run_id, "signed", actor="reviewer_a", comment=" ")
    out = runs.reject(run_id, "signed", actor="reviewer_a", comment="数字要核实")
    s = next(x for x in out["steps"] if x["step_id"] == "signed")
    assert s["state"] == "in_progress" and s["round"] == 1
    runs.transition(run_id, "signed", "awaiting_approval", actor="drafter_a")
    runs.approve(run_id, "signed", actor="press_a", comment="同意")  # a new round: press_a did not draft this one
    assert step(h, run_id, "signed")["state"] == "awaiting_approval"
    h.clock.advance(600)
    out = runs.approve(run_id, "signed", actor="leader_b", comment="同意发布")
    s = next(x for x in out["steps"] if x["step_id"] == "signed")
    assert s["state"] == "done" and s["met"] is True
    assert [(a["round"], a["role"], a["actor"], a["decision"]) for a in s["approvals"]] == [
        (0, "drafter", "press_a", "drafted"), (0, "reviewer", "reviewer_a", "rejected"),
        (1, "drafter", "drafter_a", "drafted"), (1, "reviewer", "press_a", "approved"), (1, "leader", "leader_b", "approved")]
    assert out["first_response_at"] is not None
    with pytest.raises(InvalidTransition):
        runs.approve(run_id, "signed", actor="leader_a")


def test_a_step_anchored_on_another_waits_for_it(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    run_id = run_of(h)
    after = step(h, run_id, "after")
    assert after["due"] is None and after["waiting_for"] == "signed" and after["time_left"] is None
    with pytest.raises(InvalidTransition, match="follows step 'signed'"):
        runs.transition(run_id, "after", "in_progress", actor="a")
    runs.transition(run_id, "signed", "in_progress", actor="press_a")
    runs.transition(run_id, "signed", "awaiting_approval", actor="drafter_a")
    runs.approve(run_id, "signed", actor="reviewer_a")
    h.clock.advance(3600)
    runs.approve(run_id, "signed", actor="leader_a")
    after = step(h, run_id, "after")
    assert after["due"] is not None and after["time_left"] == pytest.approx(24 * 3600, abs=1)


def test_evidence_rules_and_nothing_half_applied(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    run_id = run_of(h)
    runs.transition(run_id, "proof", "in_progress", actor="a")
    with pytest.raises(PlaybookError) as err:
        runs.transition(run_id, "proof", "done", actor="a")
    assert {tuple(e["loc"]) for e in err.value.errors} == {("evidence", "link"), ("evidence", "file")}
    before = audit_count(h, run_id)
    with pytest.raises(PlaybookError) as err:
        runs.add_evidence(run_id, "proof", kind="link", actor="a", value="javascript:alert(1)")
    assert err.value.errors[0]["loc"] == ["value"]
    limit = h.plans.config.max_evidence_bytes
    big = base64.b64encode(b"x" * (limit + 1)).decode()
    with pytest.raises(PlaybookError) as err:
        runs.add_evidence(run_id, "proof", kind="file", actor="a", content_b64=big, filename="a.pdf")
    assert err.value.errors[0]["loc"] == ["content_b64"] and str(limit) in err.value.message
    with pytest.raises(PlaybookError):
        runs.add_evidence(run_id, "proof", kind="file", actor="a", content_b64="@@@", filename="a.pdf")
    with pytest.raises(PlaybookError) as err:
        runs.add_evidence(run_id, "proof", kind="file", actor="a", content_b64="YQ==", filename="../etc/passwd")
    assert err.value.errors[0]["loc"] == ["filename"]
    with pytest.raises(PlaybookError):
        runs.add_evidence(run_id, "proof", kind="video", actor="a", value="x")
    assert audit_count(h, run_id) == before
    assert step(h, run_id, "proof")["evidence"] == []
    runs.add_evidence(run_id, "proof", kind="link", actor="a", value="https://www.gov.cn/x.html")
    saved = runs.add_evidence(run_id, "proof", kind="file", actor="a", content_b64=base64.b64encode(b"%PDF").decode(),
                              filename="答复书.pdf", media_type="application/pdf")
    assert saved["size"] == 4 and runs.evidence_file(run_id, saved["id"]) == (b"%PDF", "答复书.pdf", "application/pdf")
    out = runs.transition(run_id, "proof", "done", actor="a")
    assert next(s for s in out["steps"] if s["step_id"] == "proof")["state"] == "done"
    with pytest.raises(InvalidTransition):
        runs.add_evidence(run_id, "proof", kind="link", actor="a", value="https://www.gov.cn/y.html")


def test_extensions_within_the_allowance_by_the_right_role(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    run_id = run_of(h)
    due0 = step(h, run_id, "proof")["due"]
    with pytest.raises(PermissionDenied):
        runs.extend(run_id, "proof", by="5wd", actor="anyone", reason="复杂")
    with pytest.raises(PlaybookError) as err:
        runs.extend(run_id, "proof", by="11wd", actor="leader_a", reason="复杂")
    assert err.value.errors[0]["loc"] == ["by"]
    with pytest.raises(PlaybookError):
        runs.extend(run_id, "proof", by="2d", actor="leader_a", reason="复杂")
    with pytest.raises(PlaybookError):
        runs.extend(run_id, "plain", by="1h", actor="leader_a", reason="复杂")
    out = runs.extend(run_id, "proof", by="5wd", actor="leader_a", reason="需要现场核查")
    s = next(x for x in out["steps"] if x["step_id"] == "proof")
    assert s["due_spec"] == "20wd" and s["extension"] == "5wd" and s["due"] > due0
    out = runs.extend(run_id, "proof", by="5wd", actor="leader_a", reason="再延")
    assert next(x for x in out["steps"] if x["step_id"] == "proof")["due_spec"] == "25wd"
    with pytest.raises(PlaybookError, match="at most 10wd"):
        runs.extend(run_id, "proof", by="1wd", actor="leader_a", reason="再延")


def test_run_closes_when_every_step_is_finished_and_then_nothing_changes(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    run_id = run_of(h)
    for sid in ("plain", "signed", "after"):
        runs.transition(run_id, sid, "skipped", actor="leader_a", reason="演练")
    runs.add_evidence(run_id, "proof", kind="link", actor="a", value="https://x.gov.cn/")
    runs.add_evidence(run_id, "proof", kind="file", actor="a", content_b64="YQ==", filename="a.txt")
    runs.transition(run_id, "proof", "in_progress", actor="a")
    out = runs.transition(run_id, "proof", "done", actor="a")
    assert out["state"] == "closed" and out["closed_at"] is not None
    assert out["first_response_at"] is None  # the public-response step was skipped
    with pytest.raises(InvalidTransition, match="closed"):
        runs.assign(run_id, "plain", assignee="x", actor="leader_a")
    actions = [a["action"] for a in runs.audit(run_id)]
    assert actions[0] == "start_run" and actions[-1] == "close_run" and actions.count("skip") == 3


def test_assign_comment_cancel(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    run_id = run_of(h)
    out = runs.assign(run_id, "signed", assignee="press_b", actor="leader_a")
    assert next(s for s in out["steps"] if s["step_id"] == "signed")["assignee"] == "press_b"
    runs.comment(run_id, actor="leader_a", text="请尽快", step_id="signed")
    with pytest.raises(PlaybookError):
        runs.comment(run_id, actor="", text="x")
    with pytest.raises(PermissionDenied):
        runs.cancel(run_id, actor="press_b", reason="误报")
    out = runs.cancel(run_id, actor="leader_a", reason="误报")
    assert out["state"] == "cancelled"
    assert [a["action"] for a in runs.audit(run_id)][-3:] == ["assign", "comment", "cancel_run"]


def test_audit_log_is_append_only_in_the_database(h) -> None:  # noqa: ANN001
    run_id = run_of(h)
    for statement in ("UPDATE plan_audit SET actor = 'x'", "DELETE FROM plan_audit"):
        with pytest.raises(StorageError, match="append-only"), h.service.store.write() as conn:
            conn.execute(text(statement))
    assert audit_count(h, run_id) == 1


def test_unique_constraint_one_run_per_playbook_and_subject(h) -> None:  # noqa: ANN001
    runs = h.plans.runs
    first = runs.start_manual("t", actor="a", event_id="ev-1")
    with pytest.raises(InvalidTransition, match=f"already has run {first['id']}"):
        runs.start_manual("t", actor="b", event_id="ev-1")
    with pytest.raises(StorageError, match="UNIQUE|unique"), h.service.store.write() as conn:
        conn.execute(plan_runs.insert().values(playbook_id="t", playbook_version="x", subject="event:ev-1", title="",
                                               state="open", trigger="manual", labels="{}", started_ts=0,
                                               started_by="x", updated_ts=0))


def test_time_left_counts_down_with_the_clock(h) -> None:  # noqa: ANN001
    run_id = run_of(h)
    assert step(h, run_id, "plain")["time_left"] == pytest.approx(7200, abs=1)
    h.clock.advance(timedelta(hours=3))
    s = step(h, run_id, "plain")
    assert s["time_left"] == pytest.approx(-3600, abs=1) and s["overdue"] is True


def test_open_roles_allow_step_work_but_never_signing(make_harness) -> None:  # noqa: ANN001
    roles = {"duty_office": {}, "press_office": {}, "drafter": {}, "reviewer": {}, "leader": {}}
    h = make_harness(dir=str(PLANS), auto_start=False, roles=roles)
    runs = h.plans.runs
    run_id = run_of(h)
    runs.transition(run_id, "signed", "in_progress", actor="anyone")  # open role: step work is allowed
    with pytest.raises(PermissionDenied, match="nobody holds drafter yet"):
        runs.transition(run_id, "signed", "awaiting_approval", actor="anyone")
    with pytest.raises(PermissionDenied):
        runs.extend(run_id, "proof", by="1wd", actor="anyone", reason="x")
    with pytest.raises(PermissionDenied):
        runs.cancel(run_id, actor="anyone", reason="x")
    assert step(h, run_id, "signed")["state"] == "in_progress"
