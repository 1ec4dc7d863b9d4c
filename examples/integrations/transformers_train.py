"""A transformers ``Trainer`` tracked by trackhook: ``python transformers_train.py`` (CPU).

Needs ``pip install trackhook[transformers]``. The model is a tiny BERT built from its
configuration: nothing is downloaded. The trackers come from ``trackhook.yaml``.
"""

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from trackhook.integrations import run_id_for
from trackhook.integrations.transformers import TrackhookCallback


class RandomSentences(torch.utils.data.Dataset):
    def __init__(self, count: int) -> None:
        self.ids = torch.randint(0, 100, (count, 16))
        self.labels = torch.randint(0, 2, (count,))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


model = BertForSequenceClassification(
    BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
)
args = TrainingArguments(
    output_dir="bert-output",
    max_steps=10,
    per_device_train_batch_size=8,
    logging_steps=2,
    eval_strategy="steps",
    eval_steps=5,
    report_to="none",  # no other tracker's callback
    use_cpu=True,
)
# The same output_dir after a restart gives the same run_id: the run continues.
callback = TrackhookCallback(run_id_for(args.output_dir), tag="transformers-example")
trainer = Trainer(
    model=model,
    args=args,
    train_dataset=RandomSentences(160),
    eval_dataset=RandomSentences(32),
    callbacks=[callback],
)
trainer.train()
print(f"run {callback.run_id}: .run_log_store/{callback.run_id}.json")
