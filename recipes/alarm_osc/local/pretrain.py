#!/usr/bin/env python
"""Pretrain the open-set clip network on procedurally generated classes.

Reads the log-Mel clips of ``data_prep.make_alarm_pretrain`` and trains the network of the
recipe's configuration (``--config``) on them with :func:`kwsos.embeddings.clip.pretrain`; writes it
with :func:`kwsos.embeddings.clip.save_pretrained` for ``OpenSetConfig(init=...)``.

    python local/pretrain.py ../../data/alarm_pretrain/features.npz \\
        --config conf/direct.json --epochs 30 --out ../../kwsos/data/osc_pretrained.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from kwsos.embeddings.clip import pretrain, save_pretrained
from kwsos.errors import KwsosError
from kwsos.tasks.openset import OpenSetConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("features", type=Path, help="npz of data_prep.make_alarm_pretrain")
    p.add_argument("--config", type=Path, help="JSON file of OpenSetConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop at this budget")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    options = json.loads(args.config.read_text()) if args.config else {}
    options.pop("recipe", None)  # recipe-level settings of the config file
    for key in ("init", "keep_pretrained", "reference_speeds"):  # not pretraining settings
        options.pop(key, None)
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    options.setdefault("device", "cpu")
    if args.threads:
        options["threads"] = args.threads
    config = OpenSetConfig.from_flat(options)  # flat options, as in the conf files and --set
    try:
        with np.load(args.features) as z:
            x, labels, data = z["features"], z["labels"], json.loads(str(z["config"]))
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(
            f"error: cannot read {args.features} as data_prep.make_alarm_pretrain output: {exc}"
        ) from None
    front = config.frontend.to_dict()
    if any(data[k] != v for k, v in front.items()):
        raise SystemExit(f"error: {args.features} has frontend {data}, the config {front}")
    t0 = time.perf_counter()
    try:
        model, log = pretrain(
            x.astype(np.float32), labels, frontend=config.frontend, model=config.model,
            training=config.training, epochs=args.epochs,
            batch_size=args.batch_size, max_minutes=args.max_minutes,
        )  # fmt: skip
    except KwsosError as exc:
        raise SystemExit(f"error: {exc}") from None
    info = {
        "data": {**data, "path": str(args.features), "clips": len(x)},
        "epochs": log["epochs_run"],
        "batch_size": args.batch_size,
        "config": config.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
        "final_loss": log["losses"][-1],
    }
    save_pretrained(model, args.out, frontend=config.frontend, info=info)
    logging.info("pretrained in %.0f s -> %s", info["seconds"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
