"""Configuration of text understanding (section `nlp:` of yuqing.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from core.config_base import Strict


class NlpConfig(Strict):
    """Where the trained models are and how to segment; relative paths are read from the repository root."""

    enabled: bool = True
    models_dir: Path = Path("models")
    segmenter: Literal["auto", "jieba", "rjieba"] = "auto"
    neutral_band: float = Field(0.2, ge=0.0, lt=1.0)
    emotion_weight: float = Field(0.0, ge=0.0, le=1.0)
    max_chars: int = Field(2000, ge=100, le=200_000)
