"""A Lightning fit tracked by trackhook: ``python lightning_train.py`` (CPU, seconds).

Needs ``pip install trackhook[lightning]``; the trackers come from ``trackhook.yaml`` (without
one, the run log in ``.run_log_store/`` records the run).
"""

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from trackhook.integrations import run_id_for
from trackhook.integrations.lightning import TrackhookLogger


class Regression(LightningModule):
    def __init__(self, learning_rate: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()  # tracked at step 0 as parameters
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_index):
        features, targets = batch
        loss = torch.nn.functional.mse_loss(self.layer(features), targets)
        self.log("train_loss", loss)  # tracked at the global step
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)


data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=16)
# The same checkpoint folder after a restart gives the same run_id: the run continues.
logger = TrackhookLogger(run_id_for("checkpoints"), tag="lightning-example")
trainer = Trainer(
    logger=logger,
    max_epochs=3,
    accelerator="cpu",
    log_every_n_steps=1,
    default_root_dir="checkpoints",
    callbacks=[ModelCheckpoint(save_last=True)],
    enable_progress_bar=False,
)
trainer.fit(Regression(), data, ckpt_path="last")  # resumes from checkpoints/ if a fit was cut
print(f"run {logger.version} in experiment {logger.name}: .run_log_store/{logger.version}.json")
