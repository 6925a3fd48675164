"""Benchmark (k): `kwsos osc classify` throughput in clips per second, start-up included.

    python benchmarks/bench_osc_classify.py --n 200 --repeats 3
    python benchmarks/bench_osc_classify.py --alarm-real data/alarm_real --results /tmp/k.md

Untimed set-up, cached in ``--out``: the clips and a model fitted with the CLI defaults
(``kwsos osc fit SHOTS --model M``: the bundled pretrained network fine-tuned on one shot of each
of ``--classes`` classes, kept beside it, speed-changed references). The clips are generated
(:func:`data_prep.make_alarm_pretrain.render_class`: 16 alarm-like 4-s clips per class, written
as 16-bit WAV at ``--sample-rate`` with ``--channels``) unless ``--alarm-real`` names the
real-recording benchmark's folder (``data_prep.make_alarm_real_bench``), whose first ``--n``
clips (sorted by path) are then classified.

Timed, each ``--repeats`` times (median; the machine is shared, so the load average is printed
at the start and at the end):

* the real command in a fresh process, ``kwsos osc classify DIR --model M -f csv -o OUT``, on the
  ``--n`` clips and on one clip (start-up: imports, model load, first clip), wall time and peak
  RSS (``ru_maxrss`` of the waited-for child); clips/s = n / wall;
* in this process: :meth:`OpenSetClassifier.load` and :meth:`predict_details` of the ``--n``
  paths, after one untimed warm-up call.

Every CLI run's CSV must be identical to the first one's (else the benchmark fails); its SHA-256
is printed, so that runs of two versions of kwsos can be compared (run one with
``PYTHONPATH=/copy/of/old:.``). Target (issue 18, item 4): >= 50 clips/s on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # data_prep; appended, so PYTHONPATH can put another kwsos first

from bench_detect_long import cpu_model, measure  # noqa: E402 - sibling script (benchmarks/)

_SCRIPT = Path(sys.executable).with_name("kwsos")
KWSOS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "kwsos.cli"]
CLIPS_PER_CLASS = 16


def machine() -> str:
    model = cpu_model()
    import torch

    import kwsos

    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, kwsos {kwsos.__version__} from {Path(kwsos.__file__).parent}"
    )


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def generated_clips(out: Path, n: int, classes: int, sample_rate: int, channels: int) -> None:
    """``out/shots/<class>/`` (one shot per known class) and ``out/clips/`` (``n`` clips of the
    known and of other, unknown classes), generated; nothing is done when they exist."""
    import soundfile as sf

    from data_prep.make_alarm_pretrain import render_class
    from kwsos.audio import SAMPLE_RATE, sinc_resample

    done = out / "clips.done"
    if done.is_file():
        return
    shutil.rmtree(out, ignore_errors=True)
    n_classes = max(classes + 1, -(-(n + classes) // CLIPS_PER_CLASS))
    written = 0
    for k in range(n_classes):
        for i, x in enumerate(render_class(0, k)):
            if sample_rate != SAMPLE_RATE:
                x = sinc_resample(x, SAMPLE_RATE, sample_rate)
            x = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
            name = f"class{k:02d}_{i:02d}.wav"
            if k < classes and i == 0:
                path = out / "shots" / f"class{k:02d}" / name
            elif written < n:
                path = out / "clips" / name
                written += 1
            else:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), x, sample_rate, subtype="PCM_16")
    done.write_text(f"{written}\n")


def alarm_real_clips(out: Path, data: Path, n: int, classes: int) -> None:
    """The same layout (symbolic links) from the real-recording benchmark's folder: one shot of
    each of the first ``classes`` pattern-sound classes, and the first ``n`` other clips."""
    done = out / "clips.done"
    if done.is_file():
        return
    shutil.rmtree(out, ignore_errors=True)
    known = sorted(p for p in (data / "data" / "pattern_sounds").iterdir() if p.is_dir())
    if len(known) < classes:
        raise SystemExit(f"{data} has fewer than {classes} classes in data/pattern_sounds")
    shots = set()
    for folder in known[:classes]:
        shot = sorted(folder.glob("*.wav"))[0]
        shots.add(shot)
        (out / "shots" / folder.name).mkdir(parents=True)
        (out / "shots" / folder.name / shot.name).symlink_to(shot.resolve())
    clips = [p for p in sorted((data / "data").rglob("*.wav")) if p not in shots][:n]
    if len(clips) < n:
        raise SystemExit(f"{data} has only {len(clips)} clips besides the shots, not {n}")
    (out / "clips").mkdir()
    for p in clips:
        (out / "clips" / f"{p.parent.name}__{p.name}").symlink_to(p.resolve())
    done.write_text(f"{n}\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="clips to classify")
    ap.add_argument("--classes", type=int, default=4, help="known classes of the model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample-rate", type=int, default=16000, help="of the generated clips")
    ap.add_argument("--channels", type=int, default=1, help="of the generated clips")
    ap.add_argument("--alarm-real", type=Path, default=None, help="use this benchmark's clips")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "osc_classify")
    ap.add_argument("--results", type=Path, default=None, help="write a markdown section here")
    args = ap.parse_args(argv)

    lines: list[str] = []

    def say(msg: str = "") -> None:
        print(msg, flush=True)
        lines.append(msg)

    if args.alarm_real is not None:
        source = f"alarm_real_{args.n}_{args.classes}"
        out = args.out / source
        alarm_real_clips(out, args.alarm_real, args.n, args.classes)
    else:
        source = f"generated_{args.n}_{args.classes}_{args.sample_rate}_{args.channels}ch"
        out = args.out / source
        generated_clips(out, args.n, args.classes, args.sample_rate, args.channels)
    clips = out / "clips"
    paths = sorted(clips.iterdir())
    model = out / "model.osc"
    if not model.is_file():
        print(f"fitting {model} (CLI defaults) ...", flush=True)
        tmp = model.with_name("model.tmp.osc")
        subprocess.run([*KWSOS, "osc", "fit", str(out / "shots"), "--model", str(tmp)],
                       check=True, cwd=ROOT)  # fmt: skip
        tmp.rename(model)
    one = paths[0]
    results = out / "results"
    results.mkdir(exist_ok=True)
    classify = [*KWSOS, "osc", "classify", "--model", str(model), "-f", "csv", "-o"]
    measure([*classify, str(results / "warm-up.csv"), str(one)], cwd=ROOT)  # numba and page caches

    say(f"machine: {machine()}")
    say(f"load average at start (1/5/15 min): {load_average()}")
    say(f"clips: {len(paths)} x {source} in {clips}")
    runs: dict[str, list[tuple[float, float]]] = {"one": [], "all": []}
    digest = None
    for r in range(args.repeats):
        runs["one"].append(measure([*classify, str(results / "one.csv"), str(one)], cwd=ROOT))
        csv = results / f"all_{r}.csv"
        runs["all"].append(measure([*classify, str(csv), str(clips)], cwd=ROOT))
        if digest is None:
            digest = sha256(csv)
        elif sha256(csv) != digest:
            raise SystemExit(f"{csv} differs from the first run's CSV")
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    rss = {k: max(m for _, m in v) for k, v in runs.items()}
    say(f"CSV sha256 {digest} ({results / 'all_0.csv'})")

    # in this process: the library path (model load, then the clips)
    from kwsos.tasks.openset import OpenSetClassifier

    t0 = time.perf_counter()
    clf = OpenSetClassifier.load(model)
    load_s = time.perf_counter() - t0
    files = [str(p) for p in paths]
    clf.predict_details(files[:8])  # warm-up
    lib = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        clf.predict_details(files)
        lib.append(time.perf_counter() - t0)
    lib_s = statistics.median(lib)
    say(f"load average at end (1/5/15 min): {load_average()}")

    n = len(paths)
    each = ", ".join(f"{w:.2f}" for w, _ in runs["all"])
    say()
    say("| measurement | wall (median) | clips/s | peak RSS |")
    say("|---|---:|---:|---:|")
    say(f"| `kwsos osc classify` of 1 clip (start-up) | {wall['one']:.2f} s | | "
        f"{rss['one']:.0f} MiB |")  # fmt: skip
    say(f"| `kwsos osc classify` of {n} clips (runs: {each} s) | {wall['all']:.2f} s | "
        f"**{n / wall['all']:.1f}** | {rss['all']:.0f} MiB |")  # fmt: skip
    extra = max(wall["all"] - wall["one"], 1e-9)
    say(f"| the same, after start-up ({n} - 1 clips) | {extra:.2f} s | {(n - 1) / extra:.0f} | |")
    say(f"| in process: `OpenSetClassifier.load` | {load_s:.3f} s | | |")
    say(f"| in process: `predict_details` of {n} paths | {lib_s:.2f} s | {n / lib_s:.0f} | |")

    if args.results is not None:
        from kwsos.io import write_text_atomic

        env = [f"{k}={shlex.quote(os.environ[k])}" for k in ("PYTHONPATH",) if k in os.environ]
        cmd = " ".join([*env, "python", *(shlex.quote(a) for a in sys.argv)])
        text = "## (k) `kwsos osc classify` throughput\n\n"
        text += f"Command (from the repo root):\n\n```\n{cmd}\n```\n\nOutput:\n\n```\n"
        text += "\n".join(ln for ln in lines if ln and not ln.startswith("|")) + "\n```\n\n"
        text += "\n".join(ln for ln in lines if ln.startswith("|")) + "\n"
        write_text_atomic(args.results, text)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
