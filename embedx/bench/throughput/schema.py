"""Every field of ``throughput.json`` (schema ``embedx-throughput/1``), documented.

Times are seconds, rates per wall second, memory MiB (``_mb``), FLOP/s plain numbers. A
"spread" is ``{"median", "min", "max", "n"}`` over the repeats. The tests check that a run's
JSON holds exactly these fields (``None`` where a value does not apply).
"""

from __future__ import annotations

TOP = {
    "schema": "format name and version: embedx-throughput/1",
    "created": "local time the run started (ISO 8601)",
    "command": "the command line (sys.argv) that ran it",
    "settings": "the settings after defaults: embedders, options, device, dtypes, batch_sizes, lengths, texts, "
                "max_texts, end_to_end_texts, seconds, repeats, peer, sweeps, cold, profile, gemm_size",
    "machine": "cpus, cpu_model, platform, python, numpy (and torch / tensorflow / onnxruntime versions when loaded), "
               "load_average [1, 5, 15 min] and busy_processes (pid, cpu_percent, command of other processes "
               "above 5% CPU) at the start",
    "machine_after": "time, load_average and busy_processes at the end",
    "texts": "source (file or dataset), count (distinct texts of the defaults measurements), mean_words",
    "hardware": "gemm: list of GEMM records (see GEMM), measured before and after each subject",
    "subjects": "one record per embedder spec and dtype (see SUBJECT)",
}

GEMM = {
    "library": "numpy or torch",
    "device": "cpu, cuda, cuda:N",
    "dtype": "float32, float16, bfloat16",
    "size": "n of the n x n x n product",
    "threads": "BLAS or torch threads (None if unknown)",
    "flops_s": "best of the repeats: 2 n^3 / seconds",
    "flops_s_median": "median of the repeats",
    "when": "before <subject> or after <subject>",
}

SUBJECT = {
    "label": "spec and dtype, e.g. 'minilm-l6 float32'",
    "embedder": "the embedder id",
    "spec": "the spec as given (id or id:key=value:...)",
    "options": "options passed to the embedder (spec, -O, dtype, device)",
    "plugin": "the plugin that registered the id",
    "dtype": "the dtype option, or 'declared none' when the embedder has no dtype option",
    "device": "--device",
    "device_declared": "whether the embedder has a device option (if not, it runs where its plugin puts it)",
    "family": "the family adapter that answered (transformers, word vectors, ..., generic)",
    "token_unit": "what tokens/s counts",
    "default_batch_size": "the embedder's default batch size (the defaults measurements use it)",
    "outputs": "the outputs computed (the embedder's defaults)",
    "doc_output": "the document output compared with the peer",
    "load_s": "load plus a two-text warm-up in this process (imports may already be paid; see cold)",
    "peer": "available, name, reason (when not available), load_s, default_batch_size",
    "texts": "texts of the defaults measurements",
    "mean_tokens": "their mean tokens per text",
    "flops_per_token": "matrix FLOPs per real token at mean_tokens, None when the family cannot say",
    "measurements": "every in-process measurement (see MEASUREMENT)",
    "cold": "every fresh-process run (see COLD)",
    "agreement": "comparable, texts, max_abs_diff, min_cosine of embedder vs peer on the defaults texts (or None)",
    "agreement_vs_float32": "half precision only: the same fields against the float32 subject of the same spec",
    "profile": "torch models: texts, wall_s, seconds and shares per kind (matrix products, attention, other "
               "operators, outside operators), top_operators (or None)",
    "sweeps_skipped": "sweep -> why it did not run",
    "machine_before": "load and busy processes when the subject started",
    "machine_after": "... and when it ended",
    "summary": "figures derived from measurements and cold (see SUMMARY); None if the subject failed",
}
#: Present instead of the measured fields when a subject could not run.
SUBJECT_FAILED = {"unavailable": "why the embedder cannot run here", "error": "what failed",
                  "traceback": "where (unexpected failures only)"}

MEASUREMENT = {
    "id": "index in measurements",
    "kind": "model (embed_batch alone), peer, extract (embedx.extract, model loaded), ceiling (extract, no-op model)",
    "side": "embedder or peer",
    "sweep": "defaults, batch, length, layers, pooling",
    "point": "the swept value: batch size, words per text, layers or pooling value (defaults: the batch size)",
    "repeat": "round number; an embedder and its peer of the same round ran back to back",
    "batch_size": "texts per call (a peer's own default where it batches itself; None: it does not batch)",
    "texts": "texts embedded",
    "tokens": "their tokens (token_unit)",
    "seconds": "wall time",
    "cpu_seconds": "CPU time of this process, every thread",
    "texts_s": "texts / seconds",
    "tokens_s": "tokens / seconds",
    "batches": "calls timed one by one (0 when the peer or extract batches inside one call)",
    "batch_ms_p50": "median milliseconds per call (None without per-call times)",
    "batch_ms_p95": "95th percentile",
    "peak_rss_mb": "peak resident memory of this process during the measurement (VmHWM reset before it)",
    "peak_rss_scope": "measurement, or process when the peak could not be reset",
    "gpu_peak_mb": "CUDA only: torch's peak allocated memory",
    "sm_util_mean": "CUDA only: mean SM utilisation %",
    "sm_util_source": "CUDA only: nvml, nvidia-smi, or None",
    "extract": "extract and ceiling only: total_s, compute_s (model and checks), staging_s, commit_s as extract "
               "reports them",
    "options": "layers and pooling sweeps only: the option set for that instance",
}

COLD = {
    "task": "first-vector or end-to-end",
    "side": "embedder or peer",
    "repeat": "round",
    "seconds": "from just before the spawn to the first vector (first-vector) or to the exit (end-to-end)",
    "process_s": "the whole process, exit included",
    "peak_rss_mb": "the child's own peak resident memory (VmHWM, read in the child at its end)",
    "cpu_seconds": "the child's CPU time (wait4)",
    "texts": "texts embedded",
    "extract_total_s": "embedder end-to-end: seconds_total that embedx extract reported",
    "inner_s": "peer end-to-end: seconds inside the child until the vectors were saved",
    "error": "instead of the figures when the child failed",
}

SUMMARY = {
    "model_texts_s": "spread, defaults, alone", "model_tokens_s": "spread",
    "model_batch_ms_p50": "spread", "model_batch_ms_p95": "spread",
    "extract_texts_s": "spread, defaults, extract path", "extract_tokens_s": "spread",
    "peer_texts_s": "spread, defaults, peer", "peer_tokens_s": "spread",
    "ratio_model_vs_peer": "spread of alone / peer texts/s, per round",
    "ratio_extract_vs_peer": "spread of extract / peer texts/s, per round",
    "peak_rss_mb": "spread", "gpu_peak_mb": "spread (CUDA)", "sm_util_mean": "spread (CUDA)",
    "pipeline_share": "spread of 1 - alone seconds / extract seconds, per round: what extract adds",
    "extract_breakdown_s": "compute_s, staging_s, commit_s, total_s spreads",
    "ceiling": "texts_s, tokens_s, texts_per_cpu_s, tokens_per_cpu_s spreads of the no-op model",
    "gemm": "peak_flops_s (best GEMM measured just before and after this subject), peak_dtype, flops_per_token, "
            "limit_texts_s, limit_tokens_s, model_fraction, "
            "extract_fraction (spreads of achieved matrix FLOP/s over the peak)",
    "batch": "per batch size: point, batch_size, texts, mean_tokens, model_texts_s, model_tokens_s, batch_ms_p50, "
             "batch_ms_p95, peak_rss_mb, peer_texts_s, ratio_model_vs_peer",
    "length": "per words-per-text point, the same fields",
    "layers": "per layers value, the same fields (no peer)",
    "pooling": "per pooling value, the same fields (no peer)",
    "cold": "errors; first_vector and end_to_end: embedder_s, peer_s, embedder_peak_rss_mb, peer_peak_rss_mb, "
            "speedup_vs_peer (peer seconds / embedx seconds per round; > 1: embedx finished first), texts",
}
