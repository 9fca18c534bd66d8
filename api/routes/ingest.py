"""Push intake for platforms that deliver records themselves (12345 work orders, mailbox exports)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep
from api.schemas import IngestCreate, IngestPublic
from core.errors import InputError
from core.models import RawRecord

router = APIRouter(prefix="/api/ingest", tags=["ingest"])

MAX_RECORDS = 5000


@router.post("/{source}", response_model=IngestPublic)
def ingest(source: str, body: IngestCreate, service: ServiceDep) -> IngestPublic:
    service.config.source(source)
    if len(body.records) > MAX_RECORDS:
        raise InputError(f"at most {MAX_RECORDS} records per request, got {len(body.records)}")
    records = [RawRecord(source=source, payload=r, origin="api") for r in body.records]
    return IngestPublic(report=service.ingestor.ingest(records))
