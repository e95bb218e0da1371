"""What ``embedx embedders`` shows: each id's outputs, options and whether it can run here."""

from __future__ import annotations

from typing import Any

from embedx.errors import EmbedxError
from embedx.options import option_specs, resolve_options
from embedx.registry import Registry, get_registry, missing_requirements


def describe_embedders(registry: Registry | None = None) -> list[dict[str, Any]]:
    registry = registry or get_registry()
    rows = []
    for embedder_id, entry in sorted(registry.embedders.items()):
        outputs = entry.cls.outputs
        try:  # presets often know their dimensions without loading anything
            instance = entry.cls(**resolve_options(embedder_id, entry.cls, entry.defaults, {}))
            outputs = instance.output_specs()
        except (EmbedxError, TypeError, ValueError, OSError):
            pass
        missing = missing_requirements(entry)  # class-wide and per-id requirements
        levels = sorted({o.level for o in outputs})
        rows.append({
            "id": embedder_id, "plugin": entry.plugin, "description": entry.summary,
            "level": " / ".join(levels),
            "outputs": [{"name": o.name, "level": o.level, "dim": o.dim, "per_layer": o.per_layer,
                         "default": o.name in (entry.cls.default_outputs or [o.name])} for o in outputs],
            "available": not missing, "install": "; ".join(cmd for _, cmd in missing),
            "options": [{"name": s.name, "type": s.type_label, "required": s.required and s.name not in entry.defaults,
                         "default": entry.defaults.get(s.name, None if s.required else s.default)}
                        for s in option_specs(entry.cls).values()],
        })
    return rows
