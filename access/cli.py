"""`yuqing token …` and `yuqing user …`: API tokens for integrations and accounts for people, from the shell.

A new token or generated password is printed once, alone on the last line of stdout, so scripts can capture it
(`TOKEN=$(yuqing token create --role ingest --name hotline --source hotline_12345 | tail -1)`); messages go to stderr.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from yuqing.config_file import ConfigOption

token_app = typer.Typer(help="API tokens: create (printed once), list, revoke.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts for people: create, list, set roles.", no_args_is_help=True)


def _access(config: Path | None) -> Any:
    from access.app import open_access
    from yuqing.config_file import load_config_or_exit
    from yuqing.service import build_service

    cfg = load_config_or_exit(config)
    service = build_service(cfg, enrich=False, extensions=False)
    return open_access(service.store, cfg), cfg


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
    return typer.Exit(2)


@token_app.command("create")
def token_create(role: Annotated[str, typer.Option("--role", help="press_office | staff | manager | admin | ingest")],
                 name: Annotated[str, typer.Option("--name", help="what the token is for, e.g. hotline-platform")],
                 source: Annotated[list[str] | None,
                                   typer.Option("--source", help="ingest: a source to push to (repeat)")] = None,
                 region: Annotated[list[str] | None, typer.Option("--region", help="limit to a region (repeat)")] = None,
                 expires_days: Annotated[float | None, typer.Option("--expires-days")] = None,
                 config: ConfigOption = None) -> None:
    """Create an API token; it is shown once, on the last line, and only its hash is kept."""
    from core.errors import YuqingError

    access, cfg = _access(config)
    try:
        token_id, token = access.create_token(name, role, sources=source or [], regions=region or [],
                                              expires_days=expires_days, by="cli", known_sources=cfg.sources.keys())
    except YuqingError as exc:
        raise _fail(exc) from exc
    typer.echo(f"token {token_id} ({name}, role {role}) created; it is shown only now:", err=True)
    typer.echo(token)


@token_app.command("list")
def token_list(config: ConfigOption = None) -> None:
    access, _cfg = _access(config)
    for token in access.list_tokens():
        typer.echo(json.dumps(token, ensure_ascii=False))


@token_app.command("revoke")
def token_revoke(token_id: int, config: ConfigOption = None) -> None:
    from core.errors import YuqingError

    access, _cfg = _access(config)
    try:
        access.revoke_token(token_id, by="cli")
    except YuqingError as exc:
        raise _fail(exc) from exc
    typer.echo(f"token {token_id} revoked", err=True)


@user_app.command("create")
def user_create(name: str,
                role: Annotated[list[str], typer.Option("--role", help="press_office | staff | manager | admin (repeat)")],
                region: Annotated[list[str] | None, typer.Option("--region", help="属地: limit to a region (repeat)")] = None,
                department: Annotated[list[str] | None, typer.Option("--department")] = None,
                password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
                config: ConfigOption = None) -> None:
    """Create an account. The password is read from stdin, asked for, or (with neither) generated and printed once."""
    from core.errors import YuqingError

    access, _cfg = _access(config)
    generated = False
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password, generated = secrets.token_urlsafe(12), True
    try:
        access.create_user(name, role, password, regions=region or [], departments=department or [], by="cli")
    except YuqingError as exc:
        raise _fail(exc) from exc
    typer.echo(f"user {name} created with role(s) {', '.join(role)}", err=True)
    if generated:
        typer.echo("generated password (shown only now):", err=True)
        typer.echo(password)


@user_app.command("list")
def user_list(config: ConfigOption = None) -> None:
    access, _cfg = _access(config)
    for user in access.list_users():
        typer.echo(json.dumps(user, ensure_ascii=False))


@user_app.command("set-roles")
def user_set_roles(name: str, role: Annotated[list[str], typer.Option("--role")], config: ConfigOption = None) -> None:
    from core.errors import YuqingError

    access, _cfg = _access(config)
    try:
        access.set_roles(name, role, by="cli")
    except YuqingError as exc:
        raise _fail(exc) from exc
    typer.echo(f"user {name}: roles {', '.join(role)}", err=True)
