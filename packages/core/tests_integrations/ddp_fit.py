"""A Lightning DDP fit on two CPU processes with a ``TrackhookLogger``: ``ddp_fit.py RUN_ID TAG
CONFIG``. Lightning starts the second process by running this script again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tiny_lightning import TinyRegression, random_data, tiny_trainer

from trackhook.integrations.lightning import TrackhookLogger


def main() -> None:
    run_id, tag, config = sys.argv[1:4]
    logger = TrackhookLogger(run_id, tag, config=json.loads(Path(config).read_text()))
    trainer = tiny_trainer(logger, Path.cwd(), strategy="ddp", devices=2)
    trainer.fit(TinyRegression(), random_data())


if __name__ == "__main__":
    main()
