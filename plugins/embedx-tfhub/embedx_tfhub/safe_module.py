"""Load a TF Hub / SavedModel folder only if, by construction, its graph can touch nothing outside it.

A SavedModel is a program: graph ops can read and write files, list folders, run datasets built from
serialized graphs, or call back into Python. Before ``hub.load`` runs a user's folder this checks, without
TensorFlow running anything:

1. **The folder's files** (``os.lstat``, nothing opened): every entry is a regular file or a folder, or a
   symbolic link to one inside the module folder. A FIFO, socket or device anywhere in it, or a link out
   of it, is refused before anything reads it (a FIFO would hang the load, a link would feed another
   file's bytes in as an asset or as variable data).
2. **Every op** of the graph and of every function in its library (so also the bodies of loops,
   branches and calls, and the functions of any dataset) is on the published allow-list
   :data:`ALLOWED_OPS` (:mod:`embedx_tfhub.allowed_ops`), and every function an op refers to through
   an attribute (``f``, ``body``, ``cond``, ``then_branch``, ...) is a function of the library. Datasets,
   ``DatasetFromGraph``, file readers and writers, ``MatchingFiles``, ``PyFunc`` are not on the list:
   no string constant can smuggle a graph in, because no allowed op would run it.
3. **The three ops that touch files** do so only where the loader says: ``SaveV2``/``RestoreV2``/
   ``MergeV2Checkpoints`` only in the module's own saver (the graph nodes its ``saver_def`` names, or
   functions only they call) on a path built from the saver's filename (plus suffixes without ``..``);
   ``InitializeTableFromTextFileV2`` only on an asset (an asset tensor of the graph, or a captured input
   the saved object graph binds to an asset), never on a constant or a caller's argument.
4. **Assets**: each asset's file name (``asset_file_def``, the legacy ``saved_model_assets`` collection,
   the object graph's assets) is a relative path without ``..`` and names a regular file inside
   ``assets/`` once symbolic links are resolved.

``trust_module=true`` (an embedder option, so only the command line or the API can give it) skips the
check for a folder the user trusts. The result of step 2-3 is cached per ``saved_model.pb`` version;
steps 1 and 4 run on every load.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from embedx.plugin_api import EmbedderUnavailable
from embedx_tfhub.allowed_ops import ALLOWED_OPS

#: Ops that save or restore checkpoints, with the indices of their path inputs: only in the module's saver.
SAVE_RESTORE = {"SaveV2": (0,), "RestoreV2": (0,), "MergeV2Checkpoints": (0, 1)}
#: Ops that initialise a lookup table from a file, with the index of the file name: only on an asset.
TABLE_FROM_FILE = {"InitializeTableFromTextFileV2": (1,)}
_PASS_THROUGH = {"Identity", "Snapshot", "StopGradient", "IdentityN"}
_CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
#: Ops a checkpoint path may be computed with from the saver's filename (as TF's savers do).
_PATH_OPS = {"StringJoin", "ShardedFilename", "Select", "SelectV2", "Pack"}
#: Files TensorFlow reads from a module folder (the rest of it is never opened by the loader).
MODULE_FILES = ("saved_model.pb", "saved_model.pbtxt")

_CLEAN: dict[tuple[str, int, int], list[str]] = {}  # saved_model.pb versions whose graph passed -> asset names


def check_module(folder: str | Path) -> None:
    """Raise ``EmbedderUnavailable`` (one line naming what was found) unless the folder's module stays inside it."""
    problems = scan(folder)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise EmbedderUnavailable(
            f"refusing to load the TF Hub module in {folder}: {shown}. A SavedModel is a program; embedx loads "
            "only modules whose ops are on its allow-list (embedx_tfhub.allowed_ops) and whose files stay "
            "inside the folder. If you trust this folder, pass --option trust_module=true")


def scan(folder: str | Path) -> list[str]:
    """What in ``folder`` could reach outside the module (empty: nothing). Opens nothing but ``saved_model.pb``."""
    root = Path(os.path.realpath(folder))
    problems = folder_problems(root)
    if problems:  # nothing in the folder is read until its files are known to be plain files inside it
        return problems
    graph_file = next((root / name for name in MODULE_FILES if (root / name).exists()), None)
    if graph_file is None:
        return [f"no saved_model.pb in {folder}"]
    st = os.stat(graph_file)
    version = (str(graph_file), st.st_size, st.st_mtime_ns)
    assets = _CLEAN.get(version)
    if assets is None:
        model = _parse(graph_file)
        if isinstance(model, str):
            return [model]
        problems, assets = [], []
        for meta_graph in model.meta_graphs:
            found, names = _scan_meta_graph(meta_graph)
            problems += found
            assets += names
        if problems:
            return problems
        _CLEAN[version] = assets
    return [p for name in dict.fromkeys(assets) if (p := asset_problem(root, name))]


def folder_problems(root: Path) -> list[str]:
    """Entries of ``root`` that are not regular files or folders inside it (``lstat`` only: nothing is opened)."""
    problems: list[str] = []
    root_text = str(root)
    for dirpath, dirnames, filenames in os.walk(root_text, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            shown = os.path.relpath(path, root_text)
            try:
                mode = os.lstat(path).st_mode
            except OSError as exc:
                problems.append(f"{shown} cannot be examined ({type(exc).__name__})")
                continue
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                if not _inside(target, root_text):
                    problems.append(f"{shown} is a symbolic link to {target}, outside the module")
                    continue
                try:
                    mode = os.stat(target).st_mode
                except OSError:
                    problems.append(f"{shown} is a symbolic link to nothing")
                    continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                problems.append(f"{shown} is a {_kind(mode)}, not a regular file")
    return problems


def asset_problem(root: Path, filename: str) -> str | None:
    """Why asset ``filename`` is not a regular file inside ``root/assets`` (``None``: it is)."""
    name = PurePosixPath(filename)
    if not filename or "\0" in filename or name.is_absolute() or ".." in name.parts:
        return f"asset file name {filename!r} is not a relative path inside assets/"
    assets = os.path.realpath(root / "assets")
    target = os.path.realpath(os.path.join(assets, filename))
    if not _inside(target, assets):
        return f"asset {filename!r} resolves to {target}, outside the module's assets/"
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return f"asset {filename!r} is missing from assets/"
    if not stat.S_ISREG(mode):
        return f"asset {filename!r} is a {_kind(mode)}, not a regular file"
    return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    for test, name in [(stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")]:
        if test(mode):
            return name
    return "special file"


def _parse(graph_file: Path) -> Any:
    """The SavedModel proto, or a line saying why it cannot be read."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    try:
        fd = os.open(graph_file, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in after the check never blocks
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return f"{graph_file.name} is not a regular file"
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read()
        finally:
            os.close(fd)
        if graph_file.suffix == ".pbtxt":
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), model)
        else:
            model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - a damaged protobuf is a refusal, not a crash
        return f"{graph_file.name} cannot be parsed ({type(exc).__name__})"
    return model


def _producer(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def _data(node: Any) -> list[str]:
    return [t for t in node.input if not t.startswith("^")]


def _referenced(node: Any) -> list[tuple[str, str]]:
    """``(attribute, function name)`` for every function an op refers to in its attributes."""
    found = []
    for key, value in node.attr.items():
        if value.HasField("func"):
            found.append((key, value.func.name))
        if value.HasField("list"):
            found += [(key, f.name) for f in value.list.func]
    return found


def _callees(node: Any, functions: dict[str, Any]) -> set[str]:
    """Library functions a node calls: through a function attribute, or by using one as its op."""
    return ({node.op} & functions.keys()) | {name for _, name in _referenced(node)}


def _scopes(graph: Any, functions: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """``(function name or None for the graph, nodes)`` for the graph and every library function."""
    return [(None, graph.node)] + [(name, f.node_def) for name, f in functions.items()]


def _where(scope: str | None) -> str:
    return "the graph" if scope is None else f"function {scope}"


def _scan_meta_graph(meta_graph: Any) -> tuple[list[str], list[str]]:
    """Problems of one meta graph, and the file names of its assets."""
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    problems: list[str] = []
    for scope, nodes in _scopes(graph, functions):
        for node in nodes:
            if node.op not in functions and node.op not in ALLOWED_OPS:
                problems.append(f"op {node.op} (node {node.name!r}) in {_where(scope)} is not on the allow-list")
            for attr, name in _referenced(node):
                if name not in functions:
                    problems.append(f"op {node.op} (node {node.name!r}) in {_where(scope)} calls {name!r} through "
                                    f"its {attr!r} attribute, which is not a function of the module")
    for gradient in graph.library.gradient:
        if gradient.gradient_func not in functions:
            problems.append(f"the gradient of {gradient.function_name} is {gradient.gradient_func!r}, not a function "
                            "of the module")
    if problems:
        return problems, []
    assets, asset_problems = _assets(meta_graph)
    problems += asset_problems
    problems += _saver_problems(meta_graph, functions)
    problems += _file_name_problems(meta_graph, functions, assets)
    return problems, [a.filename for a in assets]


def _assets(meta_graph: Any) -> tuple[list[Any], list[str]]:
    """The meta graph's asset definitions (``asset_file_def`` and the legacy collection) and index problems."""
    from tensorflow.core.protobuf import meta_graph_pb2

    assets = list(meta_graph.asset_file_def)
    problems = []
    for value in meta_graph.collection_def["saved_model_assets"].any_list.value:
        asset = meta_graph_pb2.AssetFileDef()
        if not value.Unpack(asset):
            problems.append("the saved_model_assets collection holds something that is not an asset")
            continue
        assets.append(asset)
    for node in meta_graph.object_graph_def.nodes:
        if node.WhichOneof("kind") == "asset" and not 0 <= node.asset.asset_file_def_index < len(
                meta_graph.asset_file_def):
            problems.append(f"an asset of the object graph names asset_file_def {node.asset.asset_file_def_index}, "
                            "which does not exist")
    return assets, problems


def _saver_problems(meta_graph: Any, functions: dict[str, Any]) -> list[str]:
    """Checkpoint ops belong to the module's saver: only the nodes ``saver_def`` names may run them."""
    graph, saver = meta_graph.graph_def, meta_graph.saver_def
    calls = {name: _callees_all(f.node_def, functions) for name, f in functions.items()}
    saving = {n for n, f in functions.items() if any(node.op in SAVE_RESTORE for node in f.node_def)}
    changed = True
    while changed:  # a function that calls a saving function saves too
        changed = False
        for name, callees in calls.items():
            if name not in saving and callees & saving:
                saving.add(name)
                changed = True
    saver_nodes = {_producer(saver.save_tensor_name), _producer(saver.restore_op_name)} - {""}
    saver_scope = {name.rsplit("/", 1)[0] + "/" for name in saver_nodes if "/" in name}
    problems = []
    for name in sorted(saving):
        if name not in _called_only_by_saver(name, graph, functions, saver_nodes):
            op = next((n.op for n in functions[name].node_def if n.op in SAVE_RESTORE), "a checkpoint op")
            problems.append(f"function {name} saves or restores a checkpoint ({op}) but is not only the module's saver")
    for node in graph.node:
        if node.op in SAVE_RESTORE or _callees(node, functions) & saving:
            owned = node.name in saver_nodes or any(node.name.startswith(scope) for scope in saver_scope)
            if not owned:
                problems.append(f"graph node {node.name!r} saves or restores a checkpoint outside the module's saver")
    return problems


def _callees_all(nodes: Iterable[Any], functions: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        found |= _callees(node, functions)
    return found


def _called_only_by_saver(name: str, graph: Any, functions: dict[str, Any], saver_nodes: set[str],
                          seen: frozenset[str] = frozenset()) -> set[str]:
    """``{name}`` if every caller of ``name`` is a saver graph node or a function only they call."""
    callers_in_graph = {node.name for node in graph.node if name in _callees(node, functions)}
    callers_in_lib = {f for f, fn in functions.items() if name in _callees_all(fn.node_def, functions)}
    if callers_in_graph - saver_nodes:
        return set()
    for caller in callers_in_lib:
        if caller == name or caller in seen or not _called_only_by_saver(caller, graph, functions, saver_nodes,
                                                                          seen | {name}):
            return set()
    return {name} if callers_in_graph or callers_in_lib else set()


def _file_name_problems(meta_graph: Any, functions: dict[str, Any], assets: list[Any]) -> list[str]:  # noqa: C901 - one case per op kind
    """Where every file name of a file-touching op comes from: the saver's filename, or an asset.

    Each such input is traced back through identity-like ops (and, for checkpoints, the saver's path
    arithmetic). A function argument is followed to every caller: ``(Stateful)PartitionedCall`` nodes and
    calls by name pass it on; the saved object graph binds captured arguments (an asset is fine, anything
    else is not), and an argument it does not bind is the caller's to choose, which is refused.
    """
    graph = meta_graph.graph_def
    asset_tensors = {_producer(a.tensor_info.name) for a in assets}
    saver_file = _producer(meta_graph.saver_def.filename_tensor_name)
    scopes = _scopes(graph, functions)
    by_name = {scope: {n.name: n for n in nodes} for scope, nodes in scopes}
    args = {name: [a.name for a in f.signature.input_arg] for name, f in functions.items()}
    problems: list[str] = []
    pending: list[tuple[str, int, str]] = []  # (function, argument index, "asset" | "saver")

    def follow(scope: str | None, tensor: str, kind: str, what: str) -> None:
        for leaf in _leaves(
            tensor, by_name[scope], set(args.get(scope, ())), kind, graph.node if scope is None else ()
        ):
            if scope is not None and leaf in args[scope]:
                pending.append((scope, args[scope].index(leaf), kind))
            elif scope is None and (leaf in asset_tensors if kind == "asset" else leaf == saver_file and leaf):
                continue
            else:
                source = by_name[scope].get(leaf)
                made = f"{source.op} {leaf!r}" if source is not None else repr(leaf)
                problems.append(f"{what} in {_where(scope)} takes its file name from {made}, not "
                                f"{'an asset of the module' if kind == 'asset' else 'the path the loader gives'}")

    for scope, nodes in scopes:
        for node in nodes:
            for ops, kind in ((TABLE_FROM_FILE, "asset"), (SAVE_RESTORE, "saver")):
                for index in ops.get(node.op, ()):
                    data = _data(node)
                    if index < len(data):
                        follow(scope, data[index], kind, f"op {node.op} (node {node.name!r})")
    objects = meta_graph.object_graph_def
    exposed = set(objects.concrete_functions.keys())
    for node in objects.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            exposed.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            exposed.add(node.bare_concrete_function.concrete_function_name)
    done: set[tuple[str, int, str]] = set()
    while pending:
        callee, index, kind = item = pending.pop()
        if item in done:
            continue
        done.add(item)
        what = f"function {callee} (argument {args[callee][index]!r}, a file name)"
        for scope, nodes in scopes:
            for node in nodes:
                refs = [attr for attr, name in _referenced(node) if name == callee]
                if node.op == callee or (node.op in _CALLS and refs == ["f"]):
                    data = _data(node)
                    if index < len(data):
                        follow(scope, data[index], kind, f"the call {node.name!r} of {what}")
                elif refs:
                    problems.append(f"{what} is run by op {node.op} (node {node.name!r}) in {_where(scope)}")
        if callee in exposed:  # the loader can run it: the object graph binds its captures, callers the rest
            saved = objects.concrete_functions[callee] if callee in objects.concrete_functions else None
            bound_inputs = list(saved.bound_inputs) if saved is not None else []
            first_capture = len(args[callee]) - len(bound_inputs)
            if index < first_capture:
                problems.append(f"{what} can be called with a file name of the caller's choosing")
            else:
                bound = bound_inputs[index - first_capture]
                node_kind = objects.nodes[bound].WhichOneof("kind") if bound < len(objects.nodes) else None
                if kind != "asset" or node_kind != "asset":
                    problems.append(f"the saved object graph binds {what} to a {node_kind}, not an asset")
    return problems


def _leaves(tensor: str, by_name: dict[str, Any], args: set[str], kind: str, graph_nodes: Iterable[Any]) -> list[str]:
    """The nodes (or function arguments) a file name is made from: through identity-like ops; for a
    checkpoint path also the saver's arithmetic on it (constant suffixes without ``..`` or a leading
    ``/``); at the graph level through a variable to what is assigned to it."""
    leaves: list[str] = []
    todo, seen = [tensor], set()
    while todo and len(seen) < 256:
        source = _producer(todo.pop())
        if source in seen:
            continue
        seen.add(source)
        node = by_name.get(source)
        if source in args or node is None:
            leaves.append(source)
        elif node.op in _PASS_THROUGH and node.input:
            todo.append(node.input[0])
        elif kind == "saver" and node.op in _PATH_OPS:
            data = _data(node)
            if node.op == "StringJoin":
                if any(not _safe_suffix(t, by_name) for t in data[1:]) or not _safe_text(node.attr["separator"].s):
                    leaves.append(source)
                    continue
                todo.append(data[0])
            elif node.op == "ShardedFilename":
                todo.append(data[0])
            elif node.op in ("Select", "SelectV2"):
                todo += data[1:3]
            else:  # Pack
                todo += data
        elif kind == "asset" and node.op == "ReadVariableOp" and graph_nodes:
            handle = _producer(node.input[0])
            assigned = [
                _data(n)[1] for n in graph_nodes if n.op == "AssignVariableOp" and _producer(n.input[0]) == handle
            ]
            if not assigned:
                leaves.append(source)
            todo += assigned
        else:
            leaves.append(source)
    return leaves


def _safe_suffix(tensor: str, by_name: dict[str, Any]) -> bool:
    """A constant (or a choice between constants) with no ``..`` and no leading ``/``: stays under the prefix."""
    node = by_name.get(_producer(tensor))
    if node is None:
        return False
    if node.op in _PASS_THROUGH and node.input:
        return _safe_suffix(node.input[0], by_name)
    if node.op in ("Select", "SelectV2"):
        return all(_safe_suffix(t, by_name) for t in _data(node)[1:3])
    if node.op == "Const":
        return all(_safe_text(s) for s in node.attr["value"].tensor.string_val)
    return False


def _safe_text(text: bytes) -> bool:
    return not text.startswith(b"/") and b".." not in text and b"\0" not in text
