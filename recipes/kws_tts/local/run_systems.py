"""Stage 1 of the KWS recipes: run every system of the configuration (local/experiment.py).

Each system runs in its own process (so that ``--jobs`` systems train side by side with
``--threads`` torch threads each); a system whose ``result.json`` exists is skipped.

    python local/run_systems.py --data data/kws_tts --exp exp/kws_tts --conf conf/kws_tts.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path


def systems_from_conf(conf: dict, only: str = ""):
    from experiment import SYSTEMS, KwsSystem

    from kwsos.tasks.kws import LEARNED_FEATURES

    table = dict(SYSTEMS)
    for name, d in conf.get("extra_systems", {}).items():
        table[name] = KwsSystem.from_dict({"name": name, **d})
    names = [s for s in only.split(",") if s] or conf["systems"]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; known: {sorted(table)}")
    out = []
    for n in names:
        s = table[n]
        if s.features in LEARNED_FEATURES:
            # the log-Mel networks take the conf's "training"; the Whisper head has its own
            # library defaults and takes "whisper_training" (e.g. only fp32 pinned)
            key = "whisper_training" if s.features.startswith("whisper") else "training"
            base = conf.get(key, {})
            training = {**base, **s.training}
            train = {**base.get("train", {}), **s.training.get("train", {})}
            options = (
                {} if s.features.startswith("whisper") else conf.get("learned_feature_options", {})
            )
            options = {**options, **s.feature_options}
            s = KwsSystem.from_dict(
                {**s.__dict__, "feature_options": options, "training": {**training, "train": train}}
            )
        out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--exp", type=Path, required=True)
    ap.add_argument("--conf", type=Path, required=True)
    ap.add_argument("--systems", default="", help="comma-separated subset (default: the conf's)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job")
    ap.add_argument("--force", action="store_true", help="re-run systems that have a result")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # worker: one system
    args = ap.parse_args()
    conf = json.loads(args.conf.read_text())

    from experiment import load_dataset
    from experiment import log as experiment_log

    from kwsos.errors import KwsosError

    # the experiment's progress (INFO) as plain lines on stdout; the library's loggers keep
    # their defaults (warnings on stderr), so its per-epoch lines stay out of the output
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    experiment_log.addHandler(handler)
    experiment_log.setLevel(logging.INFO)
    experiment_log.propagate = False

    if args.one is not None:
        import torch
        from experiment import run_system

        torch.set_num_threads(args.threads)
        (system,) = systems_from_conf(conf, args.one)
        try:
            run_system(load_dataset(args.data), system, args.exp / system.name)
        except KwsosError as exc:  # bad data: one line, not a traceback
            raise SystemExit(f"[{system.name}] error: {exc}") from None
        return

    try:  # check the dataset once before starting any system
        load_dataset(args.data)
    except KwsosError as exc:
        raise SystemExit(f"error: {exc}") from None
    systems = systems_from_conf(conf, args.systems)
    todo = [s for s in systems if args.force or not (args.exp / s.name / "result.json").is_file()]
    for s in systems:
        if s not in todo:
            print(f"  [{s.name}] done already ({args.exp / s.name / 'result.json'})")
    args.exp.mkdir(parents=True, exist_ok=True)
    running: list[tuple[str, subprocess.Popen, float]] = []
    failed = []
    env = {**os.environ, "KWSOS_THREADS": str(args.threads)}
    while todo or running:
        while todo and len(running) < args.jobs:
            s = todo.pop(0)
            cmd = [
                sys.executable,
                __file__,
                "--data",
                str(args.data),
                "--exp",
                str(args.exp),
                "--conf",
                str(args.conf),
                "--threads",
                str(args.threads),
                "--one",
                s.name,
            ]
            print(f"  [{s.name}] start", flush=True)
            running.append((s.name, subprocess.Popen(cmd, env=env), time.perf_counter()))
        time.sleep(0.5)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                took = time.perf_counter() - t0
                if proc.returncode:
                    failed.append(name)
                    print(
                        f"  [{name}] FAILED (exit {proc.returncode}) after {took:.0f} s", flush=True
                    )
                else:
                    print(f"  [{name}] finished in {took:.0f} s", flush=True)
    if failed:
        raise SystemExit(f"failed systems: {', '.join(failed)}")


if __name__ == "__main__":
    main()
