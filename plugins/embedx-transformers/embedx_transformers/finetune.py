"""Fine-tuning a BERT-family encoder end to end (or only its top N layers): the baseline heads must beat.

As in the seeds' BertLayer: masked mean (or first-token) pooling of the last layer, then
Dense(256, relu) and a softmax output; ``n_fine_tune_layers`` leaves all but the top N encoder
layers frozen. Early stopping on validation loss keeps the best epoch; every epoch's loss and
accuracy are recorded.

It reads as many word pieces as the frozen encoder does by default (``max_length`` 256), so a
comparison sets both against the same input. At 128 pieces, on email spam, whose texts (cut at
200 words) all run past 128 pieces, test accuracy fell from 0.930 to 0.903
(``benchmarks/email_finetune_window.py``). Up to 10 epochs with patience 2: at the former cap of
4, validation loss was still falling there.
"""

from __future__ import annotations

import copy
import time
from typing import Literal

import numpy as np

from embedx.plugin_api import FineTuner, FineTuneResult


class BertFineTuner(FineTuner):
    id = "bert-finetune"
    description = "BERT-family encoder fine-tuned end to end (or top N layers), Dense(256) head, early stopping"
    requires = {"torch": "pip install torch==2.13.0", "transformers": "pip install 'transformers>=4.57,<5'"}

    def __init__(self, model: str, n_fine_tune_layers: int | None = None, pooling: Literal["mean", "first"] = "mean",
                 max_length: int = 256, epochs: int = 10, patience: int = 2, lr: float = 5e-5,
                 batch_size: int = 16, hidden: int = 256, threads: int | None = None):
        self.model, self.n_fine_tune_layers, self.pooling = model, n_fine_tune_layers, pooling
        self.max_length, self.epochs, self.patience, self.lr = max_length, epochs, patience, lr
        self.batch_size, self.hidden, self.threads = batch_size, hidden, threads

    def run(self, train, validation, test, n_classes, seed):
        import os

        os.environ.setdefault("USE_TF", "0")  # transformers would otherwise import TensorFlow too
        import torch
        from transformers import AutoModel, AutoTokenizer

        from embedx_transformers.source import ModelSource

        torch.manual_seed(seed)
        if self.threads:  # none: torch's default, which honours OMP_NUM_THREADS
            torch.set_num_threads(self.threads)
        folder = ModelSource.parse(self.model).folder()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        encoder = AutoModel.from_pretrained(folder)
        trainable = self._freeze(encoder)
        head = torch.nn.Sequential(torch.nn.Linear(encoder.config.hidden_size, self.hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(self.hidden, n_classes))
        params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
        optimizer = torch.optim.AdamW(params, lr=self.lr)
        loss_fn = torch.nn.CrossEntropyLoss()

        def logits_for(texts):
            enc = tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            hidden = encoder(**enc).last_hidden_state
            if self.pooling == "first":
                pooled = hidden[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return head(pooled)

        def predict(texts):
            encoder.eval()
            head.eval()
            order = np.argsort([-len(t) for t in texts])  # similar lengths per batch: little padding
            out = np.zeros((len(texts), n_classes), dtype=np.float32)
            with torch.inference_mode():
                for start in range(0, len(texts), 64):
                    idx = order[start:start + 64]
                    out[idx] = logits_for([texts[i] for i in idx]).float().numpy()
            return out

        texts, y = list(train[0]), np.asarray(train[1])
        val_texts, val_y = list(validation[0]), np.asarray(validation[1])
        rng = np.random.default_rng(seed)
        curves = {"train_loss": [], "val_loss": [], "train_accuracy": [], "val_accuracy": []}
        best = (float("inf"), None, 0)
        stale = 0
        started = time.perf_counter()
        for epoch in range(1, self.epochs + 1):
            encoder.train()
            head.train()
            total, correct = 0.0, 0
            order = rng.permutation(len(texts))
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                target = torch.from_numpy(y[idx].astype(np.int64))
                optimizer.zero_grad()
                logits = logits_for([texts[i] for i in idx])
                loss = loss_fn(logits, target)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == target).sum())
            val_logits = predict(val_texts)
            val_loss = float(loss_fn(torch.from_numpy(val_logits), torch.from_numpy(val_y.astype(np.int64))))
            curves["train_loss"].append(total / len(texts))
            curves["train_accuracy"].append(correct / len(texts))
            curves["val_loss"].append(val_loss)
            curves["val_accuracy"].append(float((val_logits.argmax(1) == val_y).mean()))
            if val_loss < best[0] - 1e-4:
                best, stale = (val_loss, (copy.deepcopy(encoder.state_dict()), copy.deepcopy(head.state_dict())),
                               epoch), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        encoder.load_state_dict(best[1][0])
        head.load_state_dict(best[1][1])
        seconds = time.perf_counter() - started
        return FineTuneResult(predict(val_texts).argmax(1), predict(list(test)).argmax(1), curves, seconds,
                              extra={"best_epoch": best[2], "trainable_parameters": trainable,
                                     "n_fine_tune_layers": self.n_fine_tune_layers})

    def _freeze(self, encoder) -> int:
        """Freeze all but the top ``n_fine_tune_layers`` encoder layers; return the trainable parameter count."""
        if self.n_fine_tune_layers is not None:
            for p in encoder.parameters():
                p.requires_grad = False
            layers = encoder.encoder.layer
            for layer in layers[len(layers) - self.n_fine_tune_layers:]:
                for p in layer.parameters():
                    p.requires_grad = True
        return sum(p.numel() for p in encoder.parameters() if p.requires_grad)
