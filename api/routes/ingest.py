"""Push intake for platforms that deliver records themselves (12345 work orders, mailbox exports).

The records are kept in the inbox and handed to the ingest writer (`flow.writer`), the one thread that runs the
chain for every caller; the answer is 202 with their inbox ids as soon as they are durable. `?wait=true` waits for
the ingest and answers 200 with its report, for callers that need the outcome.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from access.guard import PrincipalDep, audited_write, require
from access.roles import INGESTERS, Role
from api.deps import ServiceDep
from api.schemas import IngestAccepted, IngestCreate, IngestPublic
from core.errors import InputError, PermissionDenied
from core.models import QuarantineRecord, RawRecord
from flow.intake import escape_surrogates, not_storable

router = APIRouter(prefix="/api/ingest", tags=["ingest"], dependencies=[require(INGESTERS)])

MAX_RECORDS = 5000
# Checked while the body streams in (api/limits.py), before it is parsed: 5,000 work orders of a few KB each fit.
MAX_BODY_BYTES = 32 * 1024 * 1024
WAIT_SECONDS = 120  # a waiting caller gets 202 with the inbox ids after this; the ingest still happens


@router.post("/{source}", status_code=202, response_model=IngestAccepted | IngestPublic,
             responses={200: {"model": IngestPublic, "description": "with ?wait=true: the ingest report"}})
def ingest(source: str, body: IngestCreate, service: ServiceDep, principal: PrincipalDep, request: Request,
           response: Response, wait: bool = False) -> IngestAccepted | IngestPublic:
    service.config.source(source)
    if Role.admin not in principal.roles and source not in principal.sources:
        raise PermissionDenied(f"this token may push to {sorted(principal.sources)}, not {source!r}")
    if len(body.records) > MAX_RECORDS:
        raise InputError(f"at most {MAX_RECORDS} records per request, got {len(body.records)}")
    records, rejected = [], []
    for payload in body.records:
        problem = not_storable(payload)
        if problem is None:
            records.append(RawRecord(source=source, payload=payload, origin="api"))
        else:  # kept as received, its text escaped, with the reason; the rest of the push goes on
            rejected.append(QuarantineRecord(source=source, stage="intake", reason=problem, origin="api",
                                             payload=escape_surrogates(payload), created_at=datetime.now(UTC)))
    if not wait:  # the records, the rejected ones and the audit row of the push: one write transaction
        with audited_write(request, service.store, 202):
            if rejected:
                service.store.quarantine(rejected)
            submission = service.writer.submit(records, coalesce=True)
        return IngestAccepted(inbox_ids=submission.inbox_ids, quarantined=len(rejected))
    if rejected:
        service.store.quarantine(rejected)
    submission = service.writer.submit(records)  # a waiting caller gets its own report
    try:
        report = submission.outcome.result(timeout=WAIT_SECONDS)
    except FutureTimeout:
        return IngestAccepted(inbox_ids=submission.inbox_ids, quarantined=len(rejected))
    response.status_code = 200
    return IngestPublic(report=report)

