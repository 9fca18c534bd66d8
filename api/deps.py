"""Typed dependencies: routes receive the service objects, never build them (async: an attribute read needs no trip
through the thread pool that a sync dependency takes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.config import Config
from storage.base import Store
from yuqing.host import Service


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_store(request: Request) -> Store:
    return request.app.state.service.store


async def get_config(request: Request) -> Config:
    return request.app.state.service.config


ServiceDep = Annotated[Service, Depends(get_service)]
StoreDep = Annotated[Store, Depends(get_store)]
ConfigDep = Annotated[Config, Depends(get_config)]
