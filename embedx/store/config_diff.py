"""Say how configurations of one embedder differ, so a user can pick one by what it means."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SECTIONS = ("options", "identity", "versions", "outputs", "dtype")


def flatten(config: Mapping[str, Any]) -> dict[str, str]:
    """``{"options.pooling": "mean", "versions.torch": "2.13.0", ...}`` for the parts that enter the hash."""
    flat: dict[str, str] = {}
    for section in _SECTIONS:
        value = config.get(section)
        if isinstance(value, Mapping):
            for key, item in value.items():
                flat[f"{section}.{key}"] = json.dumps(item, sort_keys=True, default=str)
        elif value is not None:
            flat[section] = json.dumps(value, sort_keys=True, default=str)
    return flat


def differences(configs: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per configuration: its short hash and the settings where it differs from the others."""
    flats = {name: flatten(config) for name, config in configs.items()}
    keys = sorted({k for flat in flats.values() for k in flat})
    varying = [k for k in keys if len({flat.get(k) for flat in flats.values()}) > 1]
    lines = []
    for name, flat in flats.items():
        shown = ", ".join(f"{k.removeprefix('options.')}={flat.get(k, '(unset)')}" for k in varying)
        lines.append(f"  {name}: {shown or 'same settings (different library or file identity)'}")
    return "\n".join(lines)
