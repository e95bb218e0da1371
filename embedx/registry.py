"""Finds plugins (built-ins first, then the ``embedx`` entry-point group) and the embedders they register."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from embedx.contract import hookspecs
from embedx.contract.embedder import Embedder
from embedx.contract.errors import EmbedderUnavailable, EmbedxError, RegistryError
from embedx.contract.options import resolve_options

ENTRY_POINT_GROUP = "embedx"
#: Comma-separated plugin names to load from entry points; unset loads all, empty loads none.
LOAD_PLUGINS_ENV = "EMBEDX_LOAD_PLUGINS"
#: Comma-separated importable modules to load as plugins without packaging them (like pytest -p).
PLUGIN_MODULES_ENV = "EMBEDX_PLUGIN_MODULES"
#: A plugin import slower than this is named in a warning: every command, even --help, pays for it.
SLOW_IMPORT_SECONDS = 0.5
#: Built-in plugins: name -> module. They register through the same hooks as third parties.
BUILTIN_PLUGINS = {"hashing": "embedx.builtin.hashing", "heads": "embedx.builtin.heads"}


@dataclass
class PluginInfo:
    name: str
    version: str
    hooks: list[str]
    source: str  # "builtin", "entry point", "module" (EMBEDX_PLUGIN_MODULES) or "test"
    error: str | None = None
    seconds: float = 0.0  # import time
    traceback: str | None = None


@dataclass
class Registered:
    """A registered id (an embedder, a head or a fine-tuner): the class, its preset option values, who registered it."""

    id: str
    cls: type[Any]  # an Embedder, Head or FineTuner subclass
    plugin: str
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    requires: dict[str, str] = field(default_factory=dict)  # extra to the class's, for this id only

    @property
    def all_requires(self) -> dict[str, str]:
        return {**self.cls.requires, **self.requires}

    @property
    def summary(self) -> str:
        return self.description or self.cls.description


@dataclass
class Registry:
    """The loaded plugins and every embedder id they registered."""

    manager: pluggy.PluginManager
    embedders: dict[str, Registered] = field(default_factory=dict)
    heads: dict[str, Registered] = field(default_factory=dict)
    finetuners: dict[str, Registered] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)

    def entry(self, embedder_id: str) -> Registered:
        try:
            return self.embedders[embedder_id]
        except KeyError:
            known = ", ".join(sorted(self.embedders)) or "none"
            broken = [p for p in self.plugins.values() if p.error]
            hint = "".join(f"\n  plugin {p.name!r} failed to load: {p.error}" for p in broken)
            raise RegistryError(f"no embedder {embedder_id!r} (known: {known}){hint}") from None

    def create(self, embedder_id: str, options: dict[str, Any] | None = None) -> tuple[Embedder, dict[str, Any]]:
        """Build an embedder from its id and user options; return it and the resolved options."""
        entry = self.entry(embedder_id)
        missing = missing_requirements(entry)
        if missing:
            module, command = missing[0]
            raise EmbedderUnavailable(
                f"embedder {embedder_id!r} (plugin {entry.plugin!r}) needs {module!r}, which is not "
                f"installed: {command}"
            )
        resolved = resolve_options(embedder_id, entry.cls, entry.defaults, options or {})
        try:
            embedder = entry.cls(**resolved)
        except EmbedxError:
            raise  # the plugin's own message for the person at the terminal
        except (ValueError, TypeError, OSError) as exc:
            raise RegistryError(f"embedder {embedder_id!r} (plugin {entry.plugin!r}) refused its options in "
                                f"{entry.cls.__name__}.__init__(): {exc}") from exc
        except Exception as exc:  # noqa: BLE001 (whatever a plugin's __init__ raises is named, never a traceback)
            raise RegistryError(f"embedder {embedder_id!r} (plugin {entry.plugin!r}) failed in "
                                f"{entry.cls.__name__}.__init__(): {type(exc).__name__}: {exc}") from exc
        return embedder, resolved


def missing_requirements(entry: Registered) -> list[tuple[str, str]]:
    """Modules the embedder needs that cannot be found, without importing them."""
    missing = []
    for module, command in entry.all_requires.items():
        if importlib.util.find_spec(module.split(".")[0]) is None:
            missing.append((module, command))
    return missing


def build_registry(
    extra_plugins: list[tuple[str, ModuleType | object]] | None = None, entry_points: bool = True
) -> Registry:
    """Load built-in plugins, then entry points (filtered by ``EMBEDX_LOAD_PLUGINS``), then ``extra_plugins``."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager)
    from embedx import __version__

    for name, module_name in BUILTIN_PLUGINS.items():
        _add(registry, name, importlib.import_module(module_name), __version__, "builtin")
    if entry_points:
        _load_entry_points(registry)
    for module_name in filter(None, (m.strip() for m in os.environ.get(PLUGIN_MODULES_ENV, "").split(","))):
        _load_plugin(registry, module_name, lambda m=module_name: importlib.import_module(m), "", "module")
    for name, plugin in extra_plugins or []:
        _add(registry, name, plugin, "", "test")
    while True:  # a misspelled hook would never run: that plugin is broken, the others load
        try:
            manager.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = manager.get_name(exc.plugin) or str(exc.plugin)
            manager.unregister(exc.plugin)
            _broken(registry, name, f"implements a hook embedx does not define: {exc}")
    _collect_all(registry)
    return registry


def _load_entry_points(registry: Registry) -> None:
    wanted = os.environ.get(LOAD_PLUGINS_ENV)
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        _load_plugin(registry, ep.name, ep.load, ep.dist.version if ep.dist else "?", "entry point")


def _load_plugin(registry: Registry, name: str, load: Any, version: str, source: str) -> None:
    """Import one plugin, timed; a plugin that fails to import is recorded with its error, never fatal:
    commands that do not need it keep working, and every command warns once (see :func:`problems`)."""
    started = time.perf_counter()
    try:
        plugin = load()
    except Exception as exc:  # noqa: BLE001 (whatever a plugin's import raises, the others still load)
        info = PluginInfo(name, version, [], source, f"{type(exc).__name__}: {exc}")
        info.seconds = time.perf_counter() - started
        info.traceback = _traceback_text()
        registry.plugins[name] = info
        return
    _add(registry, name, plugin, version, source)
    registry.plugins[name].seconds = time.perf_counter() - started


def _traceback_text() -> str:
    import traceback

    return traceback.format_exc()


def problems(registry: Registry) -> list[str]:
    """One line per plugin that failed to load or imported slowly, for the CLI to print once."""
    lines = []
    for p in registry.plugins.values():
        if p.error:
            lines.append(f"plugin {p.name!r} ({p.source}) failed to load and is skipped: {p.error.splitlines()[0]} "
                         "(`embedx plugins -v` shows the whole error)")
        elif p.seconds > SLOW_IMPORT_SECONDS:
            lines.append(f"plugin {p.name!r} took {p.seconds:.1f} s to import, which every embedx command pays; "
                         "import heavy libraries inside load() instead")
    return lines


def _add(registry: Registry, name: str, plugin: Any, version: str, source: str) -> None:
    if name in registry.plugins:
        raise RegistryError(f"two plugins are named {name!r}; uninstall one of them")
    try:
        registry.manager.register(plugin, name=name)
    except ValueError as exc:
        raise RegistryError(f"plugin {name!r} could not be registered: {exc}") from None
    hooks = sorted(h.name for h in registry.manager.get_hookcallers(plugin) or [])
    registry.plugins[name] = PluginInfo(name, version, hooks, source)


def _collect(registry: Registry, hook_name: str, kind: str, base: type[Any], target: dict[str, Registered]) -> None:
    """Call every plugin's ``hook_name(register)``; ids are global per kind, so duplicates are errors."""
    for impl in getattr(registry.manager.hook, hook_name).get_hookimpls():
        plugin_name = impl.plugin_name

        def register(cls: Any, id: str | None = None, defaults: dict[str, Any] | None = None,
                     description: str = "", requires: dict[str, str] | None = None,
                     _plugin: str = plugin_name) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise RegistryError(f"plugin {_plugin!r} registered {cls!r}, which is not an "
                                    f"{base.__module__.split('.')[0]}.{base.__name__} subclass")
            entry_id = id or cls.id  # type: ignore[attr-defined]  # every base declares id
            if not entry_id:
                raise RegistryError(f"plugin {_plugin!r} registered {cls.__name__} without an id")
            if entry_id in target:
                other = target[entry_id].plugin
                raise _Duplicate(f"{kind} id {entry_id!r} is registered by both plugin {other!r} and "
                                 f"plugin {_plugin!r}")
            target[entry_id] = Registered(entry_id, cls, _plugin, dict(defaults or {}), description,
                                             dict(requires or {}))

        try:
            impl.function(register=register)
        except _Duplicate:
            raise  # an id that keys a cache must never depend on which plugin loaded first
        except Exception as exc:  # noqa: BLE001 (that plugin is broken; the others and their commands work)
            for entry_id in [k for k, e in target.items() if e.plugin == plugin_name]:
                del target[entry_id]
            registry.manager.unregister(name=plugin_name)
            what = str(exc) if isinstance(exc, RegistryError) else f"{type(exc).__name__}: {exc}"
            _broken(registry, plugin_name, f"failed in {hook_name}: {what}")


class _Duplicate(RegistryError):
    """Two plugins claim one id."""


def _broken(registry: Registry, name: str, error: str) -> None:
    info = registry.plugins.get(name) or PluginInfo(name, "?", [], "?")
    info.error, info.traceback, info.hooks = error, _traceback_text(), []
    registry.plugins[name] = info


def _collect_all(registry: Registry) -> None:
    from embedx.finetune.base import FineTuner
    from embedx.heads.base import Head

    _collect(registry, "register_embedders", "embedder", Embedder, registry.embedders)
    _collect(registry, "register_heads", "head", Head, registry.heads)
    _collect(registry, "register_finetuners", "fine-tuner", FineTuner, registry.finetuners)


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY


def current_registry() -> Registry | None:
    """The process-wide registry if one was built, without building it (error reports use it)."""
    return _REGISTRY


def plugin_packages(registry: Registry) -> dict[str, str]:
    """Top-level package of each third-party plugin's code -> the plugin's name (built-ins are embedx's own)."""
    packages: dict[str, str] = {}
    for name, plugin in registry.manager.list_name_plugin():
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        top = str(module).split(".")[0]
        if top != "embedx":
            packages.setdefault(top, name)
    return packages


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (tests install fakes this way); ``None`` rebuilds on next use."""
    global _REGISTRY
    _REGISTRY = registry
