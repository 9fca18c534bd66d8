"""Shared core: domain model, configuration, errors and logging. Imports nothing else from the project."""

# Load the root config first, so importing a section module (core.config_<x>) directly cannot hit the
# circular import between it and core.config's bottom imports.
from core import config as _config  # noqa: E402, F401
