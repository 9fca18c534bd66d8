"""Which config file a command reads, and loading it or exiting with the reason.

Shared by `yuqing` and the sub-commands other packages add (alerts, crawl, demo-site), which therefore never import
yuqing.cli, the module that imports them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.config import Config, load_config
from core.errors import YuqingError

console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config; default $YUQING_CONFIG, ./yuqing.yaml, then ./yuqing.example.yaml"),
]


def config_path(explicit: Path | None) -> Path:
    """The file named on the command line, else $YUQING_CONFIG, else ./yuqing.yaml if present, else the example."""
    if explicit:
        return explicit
    if env := os.environ.get("YUQING_CONFIG"):
        return Path(env)
    return Path("yuqing.yaml") if Path("yuqing.yaml").exists() else Path("yuqing.example.yaml")


def load_config_or_exit(explicit: Path | None) -> Config:
    """Load the config or exit 2 with the file, the field and the reason."""
    path = config_path(explicit)
    try:
        return load_config(path)
    except YuqingError as exc:
        console.print(f"[red]configuration error[/red]: {exc.message}")
        raise typer.Exit(2) from exc
