"""Typed dependencies: routes receive the service objects, never build them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.config import Config
from storage.base import Store
from yuqing.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_store(request: Request) -> Store:
    return request.app.state.service.store


def get_config(request: Request) -> Config:
    return request.app.state.service.config


ServiceDep = Annotated[Service, Depends(get_service)]
StoreDep = Annotated[Store, Depends(get_store)]
ConfigDep = Annotated[Config, Depends(get_config)]
