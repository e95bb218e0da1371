"""Keras fine-tuning baselines for `embedx bench compare`: the seeds' Swivel + Dense(16) and ELMo's mix.

Both train with early stopping on validation loss (best weights restored) and report per-epoch
curves. The handle must be a local module (or a URL already in ``TFHUB_CACHE_DIR``); offline,
anything else fails at once with the plugin's clear error.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from embedx.plugin_api import FineTuner, FineTuneResult


class KerasHubFineTuner(FineTuner):
    id = "keras-hub-finetune"
    description = "TF Hub module in a tf_keras model, trained end to end (text module) or via ELMo's 4 mix scalars"
    requires = {"tensorflow": "pip install tensorflow==2.21.0", "tensorflow_hub": "pip install tensorflow-hub==0.16.1"}

    def __init__(self, handle: str, kind: Literal["text", "elmo"] = "text", hidden: int = 16, epochs: int = 20,
                 patience: int = 2, lr: float = 1e-3, batch_size: int = 32, trainable: bool = True):
        self.handle, self.kind, self.hidden, self.epochs, self.patience = handle, kind, hidden, epochs, patience
        self.lr, self.batch_size, self.trainable = lr, batch_size, trainable

    def run(self, train, validation, test, n_classes, seed):
        from embedx_tfhub import keras_models
        from embedx_tfhub._tf import keras, tensorflow

        tf = tensorflow()
        tf.keras.utils.set_random_seed(seed)
        if self.kind == "elmo":
            model = keras_models.elmo_classifier(self.handle, hidden=(self.hidden,), n_classes=n_classes,
                                                 learning_rate=self.lr)
        else:
            model = keras_models.text_classifier(self.handle, hidden=(self.hidden,), n_classes=n_classes,
                                                 trainable=self.trainable, learning_rate=self.lr)
        x, y = tf.constant(list(train[0])), np.asarray(train[1])
        xv, yv = tf.constant(list(validation[0])), np.asarray(validation[1])
        stop = keras().callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
        history = model.fit(x, y, validation_data=(xv, yv), epochs=self.epochs, batch_size=self.batch_size,
                            callbacks=[stop], verbose=0)
        h = history.history
        curves = {"train_loss": h["loss"], "val_loss": h["val_loss"], "train_accuracy": h["accuracy"],
                  "val_accuracy": h["val_accuracy"]}

        def labels(texts):
            p = model.predict(tf.constant(list(texts)), batch_size=256, verbose=0)
            return (p[:, 0] > 0.5).astype(np.int64) if n_classes == 2 else p.argmax(1)

        return FineTuneResult(labels(validation[0]), labels(test), {k: [float(v) for v in vals]
                                                                    for k, vals in curves.items()},
                              extra={"epochs_run": len(h["loss"])})
