"""Refuse a TF Hub / SavedModel folder whose graph can touch files outside the module, or run Python.

A SavedModel is a TensorFlow graph, and graph ops can read and write files (``ReadFile``,
``WriteFile``, ``MatchingFiles``, readers, file datasets, summary writers), save or restore
checkpoints anywhere (``SaveV2``, ``RestoreV2``, ...), or call back into Python (``PyFunc``).
Before ``hub.load`` runs a user's folder, this reads ``saved_model.pb`` (graph and function
library, no TensorFlow session) and refuses:

* any op that reads or writes files or runs Python, wherever it is;
* save/restore ops anywhere but the module's own saver: functions containing them may only be
  called by the graph nodes the ``saver_def`` names (the loader restores ``variables/`` with
  them), and those nodes must take the saver's filename placeholder;
* table initialisation from a text file whose name is not the module's own asset (a constant
  path, or one passed in as a constant by a caller).

``trust_module=true`` skips the scan for a folder the user trusts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from embedx.plugin_api import EmbedderUnavailable

#: Ops with no place in a text-embedding module: they touch the file system or run Python.
DENIED = {
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "IdentityReader",
    "IdentityReaderV2", "LMDBReader", "ReaderReadV2", "ReaderRead", "ReaderReadUpToV2", "ReaderRestoreStateV2",
    "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset",
    "ExperimentalSqlDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SaveDataset", "SaveDatasetV2",
    "LoadDataset", "ExperimentalSaveDataset", "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader",
    "SnapshotChunkDataset", "CacheDataset", "CacheDatasetV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary",
    "ImportEvent", "FlushSummaryWriter", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
    "DebugNumericSummary", "DebugNumericSummaryV2", "LoadAndRemapMatrix", "GenerateVocabRemapping",
    "DecodeProtoV2", "EncodeProto", "RecordInput", "DeleteSessionTensor", "GetSessionHandle",
}
#: Ops that save or restore checkpoints: legitimate only in the module's own saver.
SAVE_RESTORE = {"SaveV2", "RestoreV2", "Save", "SaveSlices", "Restore", "RestoreSlice", "MergeV2Checkpoints"}
#: Ops that initialise a lookup table from a file: legitimate only on the module's own assets.
TABLE_FROM_FILE = {"InitializeTableFromTextFile": 1, "InitializeTableFromTextFileV2": 1}
_PASS_THROUGH = {"Identity", "Snapshot", "StopGradient", "IdentityN"}
_CALLS = {"PartitionedCall", "StatefulPartitionedCall"}


_CLEAN: set[tuple[str, int, int]] = set()  # saved_model.pb versions that passed


def check_module(folder: str | Path) -> None:
    """Raise ``EmbedderUnavailable`` naming what was found, unless the folder's graph stays inside it."""
    graph_file = Path(folder) / "saved_model.pb"
    try:
        st = graph_file.stat()
        version = (str(graph_file.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        version = None
    if version in _CLEAN:
        return
    problems = scan(folder)
    if not problems and version is not None:
        _CLEAN.add(version)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise EmbedderUnavailable(
            f"refusing to load the TF Hub module in {folder}: {shown}. A SavedModel is a program and these ops "
            "could read or write files outside the module or run Python; if you trust this folder, pass "
            "--option trust_module=true")


def scan(folder: str | Path) -> list[str]:
    """What in ``folder``'s SavedModel could leave the module (empty: nothing)."""
    from tensorflow.core.protobuf import saved_model_pb2

    folder = Path(folder)
    model = saved_model_pb2.SavedModel()
    binary, text = folder / "saved_model.pb", folder / "saved_model.pbtxt"
    try:
        if binary.is_file():
            model.ParseFromString(binary.read_bytes())
        elif text.is_file():
            from google.protobuf import text_format

            text_format.Parse(text.read_text(encoding="utf-8"), model)
        else:
            return [f"no saved_model.pb in {folder}"]
    except Exception as exc:  # noqa: BLE001 - a damaged protobuf is a refusal, not a crash
        return [f"saved_model.pb cannot be parsed ({type(exc).__name__})"]
    problems: list[str] = []
    for meta_graph in model.meta_graphs:
        problems += _scan_meta_graph(meta_graph)
    return problems


def _callees(node: Any, functions: dict[str, Any]) -> set[str]:
    """Library functions a node calls: through a ``func`` attribute, or by using one as its op."""
    names = {node.op} & functions.keys()
    for value in node.attr.values():
        if value.HasField("func"):
            names.add(value.func.name)
        if value.HasField("list"):
            names |= {f.name for f in value.list.func}
    return names


def _producer(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def _scan_meta_graph(meta_graph: Any) -> list[str]:
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    problems: list[str] = []
    for where, nodes in [("the graph", graph.node)] + [(f"function {n}", f.node_def) for n, f in functions.items()]:
        for node in nodes:
            if node.op in DENIED:
                problems.append(f"{node.op} op {node.name!r} in {where}")
            if node.op == "PrintV2" and node.attr["output_stream"].s.startswith(b"file://"):
                problems.append(f"PrintV2 op {node.name!r} in {where} writes to a file")
    problems += _saver_problems(meta_graph, functions)
    problems += _table_problems(meta_graph, functions)
    return problems


def _saver_problems(meta_graph: Any, functions: dict[str, Any]) -> list[str]:
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
    filename_node = _producer(saver.filename_tensor_name)
    problems = []
    for name, callees in calls.items():
        if name not in saving and callees & saving:
            problems.append(f"function {name} calls the checkpoint writer/reader {sorted(callees & saving)[0]}")
    for name in sorted(saving):
        for node in functions[name].node_def:
            if node.op in SAVE_RESTORE and name not in _called_only_by_saver(name, graph, functions, saver_nodes):
                problems.append(f"{node.op} op {node.name!r} in function {name}, which is not the module's saver")
                break
    by_name = {node.name: node for node in graph.node}
    for node in graph.node:
        called = _callees(node, functions) & saving
        direct = node.op in SAVE_RESTORE
        if not called and not direct:
            continue
        owned = node.name in saver_nodes or any(node.name.startswith(scope) for scope in saver_scope)
        if not owned:
            problems.append(f"graph node {node.name!r} saves or restores a checkpoint outside the module's saver")
        elif filename_node and not _reaches(node, filename_node, by_name):
            problems.append(f"graph node {node.name!r} saves or restores a checkpoint at a path other than the "
                            "one the loader gives")
    return problems


def _callees_all(nodes: Iterable[Any], functions: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        found |= _callees(node, functions)
    return found


def _called_only_by_saver(name: str, graph: Any, functions: dict[str, Any], saver_nodes: set[str]) -> set[str]:
    """``{name}`` if every caller of ``name`` is a saver graph node or a function only they call."""
    callers_in_graph = {node.name for node in graph.node if name in _callees(node, functions)}
    callers_in_lib = {f for f, fn in functions.items() if name in _callees_all(fn.node_def, functions)}
    if callers_in_graph - saver_nodes:
        return set()
    for caller in callers_in_lib:
        if caller == name or not _called_only_by_saver(caller, graph, functions, saver_nodes):
            return set()
    return {name} if callers_in_graph or callers_in_lib else set()


def _reaches(node: Any, target: str, by_name: dict[str, Any], depth: int = 0) -> bool:
    """Whether ``target`` is among the data inputs of ``node`` or of what feeds it (a few steps)."""
    if depth > 8:
        return False
    for tensor in node.input:
        if tensor.startswith("^"):
            continue
        source = _producer(tensor)
        if source == target or (source in by_name and _reaches(by_name[source], target, by_name, depth + 1)):
            return True
    return False


def _table_problems(meta_graph: Any, functions: dict[str, Any]) -> list[str]:
    """Tables read from files: the file must be an asset of the module, never a constant path."""
    graph = meta_graph.graph_def
    assets = {_producer(asset.tensor_info.name) for asset in meta_graph.asset_file_def}
    problems: list[str] = []
    tainted: set[tuple[str, int]] = set()  # (function, argument index) that ends up as a file name
    for node in graph.node:
        if node.op in TABLE_FROM_FILE:
            source = _trace(node.input[TABLE_FROM_FILE[node.op]], {n.name: n for n in graph.node}, set())
            if source not in assets:
                problems.append(f"graph node {node.name!r} reads a table from a file that is not the module's asset")
    for name, fn in functions.items():
        args = [a.name for a in fn.signature.input_arg]
        by_name = {n.name: n for n in fn.node_def}
        for node in fn.node_def:
            if node.op in TABLE_FROM_FILE:
                source = _trace(node.input[TABLE_FROM_FILE[node.op]], by_name, set(args))
                if source in args:
                    tainted.add((name, args.index(source)))
                else:
                    problems.append(f"{node.op} op {node.name!r} in function {name} reads a file named by a constant")
    seen: set[tuple[str, int]] = set()
    while tainted - seen:  # who passes a file name into those arguments?
        callee, index = next(iter(tainted - seen))
        seen.add((callee, index))
        for scope, nodes, args in [("the graph", graph.node, [])] + [
                (f"function {n}", f.node_def, [a.name for a in f.signature.input_arg]) for n, f in functions.items()]:
            by_name = {n.name: n for n in nodes}
            for node in nodes:
                if callee not in _callees(node, functions):
                    continue
                data = [t for t in node.input if not t.startswith("^")]
                if index >= len(data):
                    continue
                source = _trace(data[index], by_name, set(args))
                if source in args:
                    tainted.add((scope.removeprefix("function "), args.index(source)))
                elif source not in assets and by_name.get(source) is not None and by_name[source].op == "Const":
                    problems.append(f"{scope} passes a constant file name to {callee}, which reads a table from it")
    return problems


def _trace(tensor: str, by_name: dict[str, Any], args: set[str]) -> str:
    """The node (or function argument) a tensor comes from, through identity-like ops."""
    source = _producer(tensor)
    for _ in range(32):
        if source in args or source not in by_name:
            return source
        node = by_name[source]
        if node.op not in _PASS_THROUGH or not node.input:
            return source
        source = _producer(node.input[0])
    return source
