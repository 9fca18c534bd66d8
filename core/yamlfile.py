"""YAML the project reads (config, lexicons, schemes, matters, playbooks), parsed by libyaml when PyYAML has it.

Why: PyYAML's pure-Python parser took ≈ 0.1 s of CPU at every start for the few files a process reads (the writer of
an import reads eight); libyaml's, behind the same safe constructor, builds the same values about nine times faster.
"""

from __future__ import annotations

from typing import Any

import yaml

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """`yaml.safe_load`: the same values and errors (`yaml.YAMLError`), by the C parser where installed."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a safe loader)
