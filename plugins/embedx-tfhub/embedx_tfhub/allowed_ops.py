"""The ops a TF Hub module may contain to load without ``trust_module=true``: the published allow-list.

Derived, not guessed: it is the set of ops in the graphs and function libraries of every module this
plugin builds or exports (:func:`embedx_tfhub.testing.reference_modules.build_reference_modules`: the
Swivel exporter, with and without lowercasing; the NNLM-style text test module; the ELMo test module and
the ELMo exporter; a BERT checkpoint converted by :mod:`embedx_tfhub.convert` and the BERT test module;
TF1-style text-embedding and ELMo graphs like the published TF1 Hub format modules), plus
:data:`TWINS`. A test checks that the list is exactly that, so an op nobody needs cannot sit in it;
``python -m embedx_tfhub.testing.reference_modules`` prints what each module uses.

Nothing here reads or writes a file, runs Python, or runs a graph of its own, except three ops that are
allowed only where :mod:`embedx_tfhub.safe_module` can see where their file comes from: ``SaveV2``,
``RestoreV2`` and ``MergeV2Checkpoints`` only in the module's own saver, on the path the loader gives it;
``InitializeTableFromTextFileV2`` only on a file of the module's ``assets/``. Datasets, iterators, file
readers and writers, ``PyFunc``, summary writers and every other op are refused.
"""

from __future__ import annotations

#: How a SavedModel stores, calls and restores: variables, function calls, the saver's own file ops.
SAVED_MODEL = frozenset({
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "NoOp", "StopGradient",
    "StatefulPartitionedCall",
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "VarIsInitializedOp", "DisableCopyOnRead",
    "VariableV2", "Assign",  # TF1 reference variables
    "SaveV2", "RestoreV2", "MergeV2Checkpoints",  # the saver's only (safe_module checks where)
    "ShardedFilename", "StringJoin", "StaticRegexFullMatch",  # the saver's path arithmetic
})
#: Control flow: functional (TF2) and the v1 loop ops of TF1 graphs, and the lists they carry.
CONTROL_FLOW = frozenset({
    "While", "StatelessIf",
    "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
    "TensorListFromTensor", "TensorListGetItem", "TensorListReserve", "TensorListSetItem", "TensorListStack",
    "TensorArrayV3", "TensorArrayGatherV3", "TensorArrayReadV3", "TensorArrayScatterV3", "TensorArrayWriteV3",
})
#: Vocabulary tables (a table from a file only on the module's own asset).
TABLES = frozenset({
    "AnonymousHashTable", "HashTableV2", "InitializeTableFromTextFileV2", "LookupTableFindV2",
    "LookupTableImportV2", "LookupTableSizeV2",
})
#: Text: normalising, splitting, hashing, bytes.
STRINGS = frozenset({
    "StaticRegexReplace", "StringLower", "StringSplit", "StringSplitV2", "StringLength",
    "StringToHashBucketFast", "DecodePaddedRaw",
})
#: Sparse and ragged tensors (tokens per text, ``embedding_lookup_sparse``).
SPARSE = frozenset({
    "SparseFillEmptyRows", "SparseReshape", "SparseSegmentSqrtN", "SparseToDense", "RaggedTensorToSparse",
    "RaggedTensorToTensor", "Unique", "UnsortedSegmentSum", "DenseBincount", "Cumsum", "Where",
})
#: Arithmetic, shapes and layers: embeddings, char CNN, LSTM, attention, layer norm, GELU.
MATH = frozenset({
    "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Rsqrt", "Erf", "Tanh", "Sigmoid", "Relu",
    "Softmax", "SquaredDifference", "MatMul", "BatchMatMulV2", "Einsum", "BiasAdd", "Conv2D",
    "Sum", "Mean", "Max", "Prod",
    "Greater", "GreaterEqual", "Less", "NotEqual", "LogicalAnd", "Select", "SelectV2",
    "Cast", "Shape", "Size", "Range", "Fill", "ZerosLike", "OneHot",
    "Reshape", "ExpandDims", "Squeeze", "Transpose", "Tile", "BroadcastTo", "ConcatV2", "Pack", "Split",
    "Slice", "StridedSlice", "GatherV2", "ResourceGather", "ReverseSequence",
})
#: Not in the reference modules, but what TensorFlow writes for the same code when a called function is
#: stateless (``PartitionedCall``) or a branch or loop body is stateful/stateless the other way round.
TWINS = frozenset({"PartitionedCall", "If", "StatelessWhile"})

#: Every op a module may contain (the published allow-list).
ALLOWED_OPS: frozenset[str] = SAVED_MODEL | CONTROL_FLOW | TABLES | STRINGS | SPARSE | MATH | TWINS
