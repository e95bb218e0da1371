"""No downloads, no TensorFlow: flair model names fail at once, and flair is imported with USE_TF=0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from embedx.plugin_api import EmbedderUnavailable


def test_flair_model_name_fails_at_once_naming_it(extract):
    started = time.perf_counter()
    with pytest.raises(EmbedderUnavailable) as caught:
        extract(["some text"], "flair-char-lm", forward="news-forward")
    assert time.perf_counter() - started < 3  # no network retries
    message = str(caught.value)
    assert "'news-forward'" in message and "never downloads" in message and "pretrained" in message
    with pytest.raises(EmbedderUnavailable, match="'mix-backward'"):
        extract(["some text"], "flair-stacked", stack="char-lm:mix-backward")


SCRIPT = """
import json, sys
import embedx_flair.plugin
light = not {"flair", "torch", "transformers"} & set(sys.modules)
import embedx
from embedx.plugin_api.testing import build_registry
report = embedx.extract(["a short text", ""], "flair-char-lm", sys.argv[1], options={"forward": sys.argv[2]},
                        registry=build_registry())
print(json.dumps({"registration_is_light": light, "computed": report.computed,
                  "flair": "flair" in sys.modules, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_embedding_keeps_tensorflow_out_and_registration_light(char_lms, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("USE_TF", "USE_TORCH")}  # as a user's shell has it
    env["EMBEDX_LOAD_PLUGINS"] = "flair"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "f.h5"), char_lms["forward"]],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"registration_is_light": True, "computed": 2, "flair": True, "tensorflow": False}
