"""The one place TensorFlow, TensorFlow Hub and tf_keras are imported, quietly and on demand.

Registration modules never import this at module level: ``embedx --help`` and every command
that does not run a TF Hub embedder stay free of TensorFlow's import cost (5-7 s) and of its
log noise. The quieting happens here, only when TensorFlow is wanted:

- ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set a value (kept as given);
- the lines TensorFlow's C++ runtime writes to stderr before its logging is set up
  (``All log messages before absl::InitializeLog()``, oneDNN and CUDA-driver probing on a CPU
  machine) are captured during the import and device discovery and dropped; any other line
  captured there is written back to stderr, and a failed import shows everything;
- absl and the ``tensorflow`` Python logger are set to errors, and the ``pkg_resources``
  deprecation warning tensorflow_hub triggers is suppressed.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from types import ModuleType

_QUIET_LEVEL = "2"  # hide TensorFlow's C++ INFO and WARNING lines
#: Start-up lines that say nothing useful on a CPU machine.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} .*"  # absl-style INFO/WARNING lines written before logging is initialised
    r"|E\d{4} .*(cuInit|cuda|CUDA|cudart|cuDNN|cuFFT|cuBLAS).*"
    r"|.*(oneDNN custom operations are on|Could not find cuda drivers|TF-TRT Warning).*"
    r"|.*This TensorFlow binary is optimized to use available CPU instructions.*"
    r"|.*To enable the following instructions.*"
    r"|\s*)$"
)


def tensorflow() -> ModuleType:
    """``import tensorflow`` with start-up noise removed and logging turned down to errors."""
    if "tensorflow" in sys.modules and getattr(sys.modules["tensorflow"], "__version__", None):
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _QUIET_LEVEL)
    with _filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery prints its CUDA probing here, not mid-run
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # absl comes with tensorflow; be tolerant anyway
        pass
    tf.get_logger().setLevel("ERROR")
    return tf


def hub() -> ModuleType:
    """``import tensorflow_hub``, without the ``pkg_resources`` deprecation warning it prints."""
    tensorflow()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        import tensorflow_hub

    return tensorflow_hub


def keras() -> ModuleType:
    """``tf_keras`` (Keras 2): ``hub.KerasLayer`` is a Keras 2 layer and cannot live in a Keras 3 model."""
    tensorflow()
    import tf_keras

    return tf_keras


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file, then write back what is not known start-up noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded interpreter): nothing to filter
        yield
        return
    failed = True
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = text.splitlines() if failed else [line for line in text.splitlines() if not _NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
