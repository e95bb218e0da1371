"""Embedder options, read from the ``__init__`` signature: names, types, defaults, parsing.

``--option key=value`` arrives as text; this module turns it into the annotated type and
names the option and embedder at fault when it cannot.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from embedx.contract.errors import OptionError

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class OptionSpec:
    name: str
    annotation: Any
    default: Any
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    @property
    def type_label(self) -> str:
        return _label(self.annotation)


def option_specs(cls: type) -> dict[str, OptionSpec]:
    """The options ``cls.__init__`` accepts, in signature order."""
    init = cls.__init__  # type: ignore[misc]  # the class's own signature is the point
    if init is object.__init__:
        return {}
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable annotations: fall back to raw strings, parse as text
        hints = {}
    specs = {}
    helps = option_help(cls)
    for name, param in inspect.signature(init).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        specs[name] = OptionSpec(name, hints.get(name, str), param.default, helps.get(name, ""))
    return specs


_OPTIONS_HEADER = re.compile(r"^\s*Options:\s*$")
_OPTION_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+)$")


def option_help(cls: type) -> dict[str, str]:
    """One line per option, from the ``Options:`` section of the class docstring (or ``__init__``'s).

    The section lists ``name: what it does`` one per line; a more indented line continues the
    one above. This keeps the description beside the code, like a docstring's ``Args:``.
    """
    helps: dict[str, str] = {}
    init = cls.__init__  # type: ignore[misc]
    docs = [inspect.getdoc(init) if init is not object.__init__ else None]
    docs += [klass.__doc__ and inspect.cleandoc(klass.__doc__) for klass in cls.__mro__]  # a subclass inherits
    for doc in docs:
        if not doc:
            continue
        inside, indent, last = False, None, None
        for line in doc.splitlines():
            if _OPTIONS_HEADER.match(line):
                inside, indent, last = True, None, None
                continue
            if not inside:
                continue
            if not line.strip():
                continue
            match = _OPTION_LINE.match(line)
            depth = len(line) - len(line.lstrip())
            if match and (indent is None or depth == indent):
                indent, last = depth, match.group(2)
                helps.setdefault(last, match.group(3).strip())
            elif last is not None and indent is not None and depth > indent:
                helps[last] = f"{helps[last]} {line.strip()}"
            else:
                inside = False
    return helps


def resolve_options(embedder_id: str, cls: type, presets: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Merge defaults < presets < user values, parse strings, and check nothing is unknown or missing."""
    specs = option_specs(cls)
    presets, given = _renamed(embedder_id, cls, presets), _renamed(embedder_id, cls, given)
    for source in (presets, given):
        unknown = sorted(set(source) - set(specs))
        if unknown:
            known = ", ".join(specs) or "none"
            raise OptionError(f"embedder {embedder_id!r} has no option {unknown[0]!r} (its options: {known})")
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            resolved[name] = parse_value(embedder_id, spec, given[name])
        elif name in presets:
            resolved[name] = parse_value(embedder_id, spec, presets[name])
        elif spec.required:
            raise OptionError(
                f"embedder {embedder_id!r} needs option {name!r} ({spec.type_label}): pass --option {name}=..."
            )
        else:
            resolved[name] = spec.default
    return resolved


def _renamed(embedder_id: str, cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """Options under their shared names: deprecated spellings renamed (with a warning), pooling aliases mapped."""
    aliases = getattr(cls, "option_aliases", {}) or {}
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in aliases:
            new, values = (aliases[name], None) if isinstance(aliases[name], str) else aliases[name]
            if values is not None:  # the old option's values become the new one's: layer_mean=true -> mean
                key = str(value).strip().lower()
                if key not in values:
                    raise OptionError(f"embedder {embedder_id!r}, option {name!r} (now {new!r}): {value!r} is not "
                                      f"one of {', '.join(values)}")
                value = values[key]
            if new in options:
                raise OptionError(f"embedder {embedder_id!r}: options {name!r} and {new!r} are the same option; "
                                  f"give only {new!r}")
            warnings.warn(f"embedder {embedder_id!r}: option {name!r} is now called {new!r}; the old name will go "
                          "away in a later version", FutureWarning, stacklevel=3)
            name = new
        out[name] = value
    if getattr(cls, "pooling_choices", ()) and isinstance(out.get("pooling"), str):
        from embedx.contract.vocabulary import canonical_pooling

        out["pooling"] = canonical_pooling(out["pooling"])
    return out


def parse_option_pairs(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``, refusing items without ``=``."""
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--option {item!r}: expected key=value")
        out[key.strip()] = value
    return out


def parse_value(embedder_id: str, spec: OptionSpec, value: Any) -> Any:
    try:
        return _coerce(spec.annotation, value)
    except (ValueError, TypeError) as exc:
        raise OptionError(
            f"embedder {embedder_id!r}, option {spec.name!r}: {value!r} is not a valid {spec.type_label} ({exc})"
        ) from None


def _coerce(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(args, value)
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError(f"choose one of {', '.join(map(str, args))}")
    if origin in (list, tuple):
        item_type = args[0] if args else str
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        items = [_coerce(item_type, v) for v in value]
        return items if origin is list else tuple(items)
    return _coerce_scalar(annotation, value)


def _coerce_union(args: tuple[Any, ...], value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
        if type(None) in args:
            return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(arg, value)
        except (ValueError, TypeError) as exc:
            errors.append(str(exc))
    raise ValueError("; ".join(errors))


def _coerce_scalar(annotation: Any, value: Any) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise TypeError("expected an integer")
        return int(value)
    if annotation is float:
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise TypeError("expected text")
        return value
    return value


def _label(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "|".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _label(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_label(args[0]) if args else 'text'}"
    return getattr(annotation, "__name__", str(annotation))
