"""What ``embedx embedders`` shows: each id's outputs, options and whether it can run here.

"Runs here" is the truth as far as it can be known without loading a model: the packages are
importable, and the embedder's own cheap :meth:`~embedx.contract.embedder.Embedder.unavailable_reason`
(a model file present, a hub module cached, a device there) found nothing missing.
"""

from __future__ import annotations

from typing import Any

from embedx.contract.errors import EmbedxError, OptionError
from embedx.contract.options import option_specs, resolve_options
from embedx.registry import Registry, get_registry, missing_requirements


def describe_embedders(registry: Registry | None = None) -> list[dict[str, Any]]:
    registry = registry or get_registry()
    rows = []
    for embedder_id, entry in sorted(registry.embedders.items()):
        needs = ""
        outputs = entry.cls.outputs
        missing = missing_requirements(entry)  # class-wide and per-id requirements
        reason = "; ".join(cmd for _, cmd in missing)
        try:  # presets often know their dimensions without loading anything
            instance = entry.cls(**resolve_options(embedder_id, entry.cls, entry.defaults, {}))
            outputs = instance.output_specs()
            if not missing:
                reason = instance.unavailable_reason() or ""
        except OptionError as exc:  # a required option (a model path): it runs once that is given
            if not missing:
                needs = ", ".join(s.name for s in option_specs(entry.cls).values()
                                  if s.required and s.name not in entry.defaults) or str(exc)
                reason = "" if _needs_option(exc) else str(exc)
        except (EmbedxError, TypeError, ValueError, OSError) as exc:  # e.g. "give forward= or backward="
            if not missing:
                needs = str(exc)
        levels = sorted({o.level for o in outputs})
        rows.append({
            "id": embedder_id, "plugin": entry.plugin, "description": entry.summary,
            "level": " / ".join(levels),
            "outputs": [{"name": o.name, "level": o.level, "dim": o.dim, "per_layer": o.per_layer,
                         "default": o.name in (entry.cls.default_outputs or [o.name])} for o in outputs],
            "available": not reason, "reason": reason, "install": "; ".join(cmd for _, cmd in missing),
            "needs": needs,
            "options": [{"name": s.name, "type": s.type_label, "required": s.required and s.name not in entry.defaults,
                         "default": entry.defaults.get(s.name, None if s.required else s.default), "help": s.help}
                        for s in option_specs(entry.cls).values()],
        })
    return rows


def _needs_option(exc: OptionError) -> bool:
    return " needs option " in str(exc)
