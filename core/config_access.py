"""The `access:` section: who may reach the service and how sessions, lock-out and personal-data views behave."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROLES = ("press_office", "staff", "manager", "admin", "ingest")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LockoutConfig(_Strict):
    """Repeated wrong passwords lock the account for a while (per account) and slow a guessing client (per address)."""

    attempts: int = Field(5, ge=1, le=100)  # failures in a row before the account locks
    lock_minutes: float = Field(15, gt=0)
    per_address_per_minute: int = Field(20, ge=1)  # login attempts from one address, any account


class AccessConfig(_Strict):
    """Accounts, sessions and tokens guard every route but `/health` and the login page."""

    # Host header values the API answers (DNS rebinding defence); add the names a reverse proxy forwards.
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "[::1]", "::1"])
    session_hours: float = Field(12, gt=0, le=24 * 30)
    # Secure cookies need HTTPS; `auto` sets Secure unless the request came over plain HTTP (a laptop on loopback).
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    lockout: LockoutConfig = Field(default_factory=LockoutConfig)
    pii_roles: list[str] = Field(default_factory=lambda: ["admin"])  # may see unmasked originals (each view audited)
    docs: Literal["login", "off"] = "login"  # /docs and /openapi.json: behind login, or not served at all

    @field_validator("pii_roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles are {list(ROLES)}")
        return roles
