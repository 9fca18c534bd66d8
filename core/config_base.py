"""What every config section module needs, kept apart from config loading so sections never import core.config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, as in Alertmanager's UnmarshalStrict."""

    model_config = ConfigDict(extra="forbid")
