"""A tiny LightningModule on random tensors, shared by the tests and the DDP script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

SAMPLES = 32
BATCH_SIZE = 8


class TinyRegression(LightningModule):
    """One linear layer; logs ``train_loss`` and ``train_mae`` at every step."""

    def __init__(self, learning_rate: float = 0.1, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        if self.hparams.fail_at_step == self.global_step:
            raise RuntimeError("the training broke down")
        features, targets = batch
        predictions = self.layer(features)
        loss = torch.nn.functional.mse_loss(predictions, targets)
        self.log("train_loss", loss)
        self.log("train_mae", (predictions - targets).abs().mean())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)


def random_data(seed: int = 0) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(SAMPLES, 4, generator=generator)
    targets = torch.randn(SAMPLES, 1, generator=generator)
    return DataLoader(TensorDataset(features, targets), batch_size=BATCH_SIZE)


def tiny_trainer(logger: Any, folder: Path, **settings: Any) -> Trainer:
    """A quiet CPU trainer logging at every step, 2 epochs of 4 steps unless told otherwise."""
    return Trainer(
        logger=logger,
        default_root_dir=folder,
        max_epochs=settings.pop("max_epochs", 2),
        accelerator="cpu",
        devices=settings.pop("devices", 1),
        log_every_n_steps=1,
        enable_checkpointing=settings.pop("enable_checkpointing", False),
        enable_progress_bar=False,
        enable_model_summary=False,
        **settings,
    )
