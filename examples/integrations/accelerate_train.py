"""An accelerate training loop tracked by trackhook: ``python accelerate_train.py`` (CPU), or
``accelerate launch accelerate_train.py`` on several processes (only the main one sends).

Needs ``pip install trackhook[accelerate]``; the trackers come from ``trackhook.yaml``.
"""

import torch
from accelerate import Accelerator

from trackhook.integrations.accelerate import TrackhookTracker

config = {"learning_rate": 0.05, "epochs": 3, "batch_size": 16}
tracker = TrackhookTracker(tag="accelerate-example")
accelerator = Accelerator(cpu=True, log_with=tracker)
accelerator.init_trackers("accelerate-example", config=config)  # config: parameters at step 0

data = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1)),
    batch_size=config["batch_size"],
)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=config["learning_rate"])
model, optimizer, data = accelerator.prepare(model, optimizer, data)

step = 0
for _epoch in range(config["epochs"]):
    for features, targets in data:
        loss = torch.nn.functional.mse_loss(model(features), targets)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"loss": loss.item()}, step=step)  # tracked at this step
        step += 1
accelerator.end_training()  # closes the run as SUCCESS
print(f"run {tracker.run_id}: .run_log_store/{tracker.run_id}.json")
