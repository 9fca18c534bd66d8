"""Push intake for platforms that deliver records themselves (12345 work orders, mailbox exports)."""

from __future__ import annotations

from fastapi import APIRouter

from access.guard import PrincipalDep, require
from access.roles import INGESTERS, Role
from api.deps import ServiceDep
from api.schemas import IngestCreate, IngestPublic
from core.errors import InputError, PermissionDenied
from core.models import RawRecord

router = APIRouter(prefix="/api/ingest", tags=["ingest"], dependencies=[require(INGESTERS)])

MAX_RECORDS = 5000


@router.post("/{source}", response_model=IngestPublic)
def ingest(source: str, body: IngestCreate, service: ServiceDep, principal: PrincipalDep) -> IngestPublic:
    service.config.source(source)
    if Role.admin not in principal.roles and source not in principal.sources:
        raise PermissionDenied(f"this token may push to {sorted(principal.sources)}, not {source!r}")
    if len(body.records) > MAX_RECORDS:
        raise InputError(f"at most {MAX_RECORDS} records per request, got {len(body.records)}")
    records = [RawRecord(source=source, payload=r, origin="api") for r in body.records]
    return IngestPublic(report=service.ingestor.ingest(records))
