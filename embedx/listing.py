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
        except Exception as exc:  # noqa: BLE001 (a plugin's bug shows on its row; the other rows still list)
            if not missing:
                call = _failed_call(exc, entry.cls)
                reason = f"plugin {entry.plugin!r} failed in {call}: {type(exc).__name__}: {exc}"
        levels = sorted({o.level for o in outputs})
        rows.append({
            "id": embedder_id, "plugin": entry.plugin, "description": entry.summary,
            "level": " / ".join(levels),
            "outputs": [{"name": o.name, "level": o.level, "dim": o.dim, "per_layer": o.per_layer,
                         "default": o.name in (entry.cls.default_outputs or [o.name])} for o in outputs],
            "available": not reason, "reason": reason, "install": "; ".join(cmd for _, cmd in missing),
            "needs": needs,
            "options": [{"name": s.name, "type": s.type_label, "required": s.required and s.name not in entry.defaults,
                         "default": entry.defaults.get(s.name, None if s.required else s.default), "help": s.help,
                         "keyed": s.name not in entry.cls.unkeyed_options}
                        for s in option_specs(entry.cls).values()],
        })
    return rows


def _failed_call(exc: BaseException, cls: type) -> str:
    """Which of the class's methods raised (``Cls.__init__()``, ``Cls.output_specs()``...), from the traceback."""
    import traceback

    calls = {f"{cls.__qualname__}.{name}": name for name in ("__init__", "output_specs", "unavailable_reason")}
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_qualname in calls:
            return f"{cls.__name__}.{calls[frame.f_code.co_qualname]}()"
    return f"{cls.__name__}()"


def _needs_option(exc: OptionError) -> bool:
    return " needs option " in str(exc)
