"""A Keras 3 fit tracked by trackhook: ``KERAS_BACKEND=torch python keras_train.py`` (CPU), or
on any other backend Keras has.

Needs ``pip install trackhook[keras]`` and a backend (torch, JAX or TensorFlow); the trackers
come from ``trackhook.yaml``.
"""

import keras
import numpy as np

from trackhook.integrations import run_id_for
from trackhook.integrations.keras import TrackhookCallback

features = np.random.normal(size=(256, 4)).astype("float32")
targets = features.sum(axis=1, keepdims=True)

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])

# BackupAndRestore resumes a cut fit from its folder; the same folder gives the same run_id.
callback = TrackhookCallback(run_id_for("backup"), tag="keras-example", every_n_batches=4)
model.fit(
    features,
    targets,
    epochs=5,
    batch_size=32,
    validation_split=0.25,
    callbacks=[keras.callbacks.BackupAndRestore("backup"), callback],
    verbose=0,
)
print(f"run {callback.run_id}: .run_log_store/{callback.run_id}.json")
