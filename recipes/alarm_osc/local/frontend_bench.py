#!/usr/bin/env python
"""Audio-domain front ends that remove the recording background before the embedding, tried on the
real-recording alarm benchmark (issue #18 [OSC-real]). Results: ``RESULTS_frontend.md``.

Hypothesis (``RESULTS_whisper.md``, ``RESULTS_aisfx.md``): training-free embeddings, and to a
lesser degree the recipe's network, name a test clip after the shot that shares its background
recording. Removing the stationary background and the device / room colouring from every clip
(shots and test clips alike) should make the nearest shot the one with the same foreground.

Front ends (numpy / scipy, one STFT of 512 / hop 128 at 16 kHz, periodic Hann, exact ISTFT):

``ss``    spectral subtraction of a stationary noise estimate: ``P = |X|^2`` smoothed over
          ``SMOOTH_FRAMES`` frames (256 ms), noise ``N`` per bin = its ``PERCENTILE``-th
          percentile over the clip's frames, gain ``sqrt(max(1 - ALPHA * N / P, FLOOR^2))``
          (``FLOOR`` = -20 dB), smoothed over 3 frames x 3 bins.
``eq``    spectral equalisation: every bin divided by the clip's median magnitude over time
          (an LTI colouring and the background's long-term spectrum cancel), bins whose median
          is below ``EQ_FLOOR`` of the largest median are clamped there.
``sseq``  both in one STFT: ``eq`` then ``ss`` (the gain of ``ss`` is invariant to a per-bin
          scale, so this is the ``ss`` output divided by the per-bin median: the residual floor is
          flat and the foreground is shown relative to the noise level in each bin).

Every output clip is scaled to the peak of its input (``kwsos.audio`` peak-normalises on load
anyway) and written as 16-bit WAV at 16 kHz, atomically.

Subcommands (from the repository root, one thread each):

``make``      a copy of the benchmark (``data/``, ``data/meta/csv``, ``prepared/**.csv`` with the
              absolute paths rewritten, ``manifest.json`` with a ``frontend`` note) where every
              wav is processed by one front end.
``val-index`` the validation folds of a (copied) benchmark, exactly as
              ``whisper_prior.py val-index`` builds them (it is imported).
``oracle``    re-renders every clip's foreground and background separately with the generator's
              own functions and seeds (checked against the stored wav), applies each front end's
              gain to both parts, and reports the SNR before / after, the energy kept of each part
              and how many frames the foreground fills, per class.
``score``     mean weighted accuracy of runs (``runs.jsonl``) per setting, and the single
              threshold chosen on validation from saved embeddings (``--save-embeddings``).
``diagnose``  how often a known test clip's nearest known shot shares its background, from
              saved embeddings (as ``whisper_prior.py diagnose`` does for the recipe's system).

    PY="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python"
    F=recipes/alarm_osc/local/frontend_bench.py
    $PY $F make --variant ss --src data/alarm_real --out data/alarm_real_ss
    $PY $F val-index --prepared data/alarm_real_ss/prepared --out exp/alarm_real_ss/val_prepared
    $PY recipes/alarm_osc/local/run_settings.py --prepared exp/alarm_real_ss/val_prepared \\
        --out exp/alarm_real_ss/val --config recipes/alarm_osc/conf/pretrained.json \\
        --jobs 2 --threads 1 --save-embeddings
    $PY $F oracle --src data/alarm_real
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import uniform_filter, uniform_filter1d
from scipy.signal import get_window

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SR = 16_000
N_FFT = 512
HOP = 128
PERCENTILE = 30.0  # noise estimate: this percentile over frames of the smoothed power
SMOOTH_FRAMES = 32  # 32 x 8 ms = 256 ms of power smoothing before the percentile
ALPHA = 4.0  # over-subtraction (the percentile is below the mean of a fluctuating noise)
FLOOR = 0.1  # gain floor (amplitude): -20 dB
EQ_FLOOR = 1e-3  # eq: medians clamped to >= this fraction of the largest median (-60 dB)
VARIANTS = ("ss", "eq", "sseq")
PARAMS = {"n_fft": N_FFT, "hop": HOP, "window": "hann (periodic)", "percentile": PERCENTILE,
          "smooth_frames": SMOOTH_FRAMES, "alpha": ALPHA, "floor_db": -20.0,
          "eq_floor": EQ_FLOOR}  # fmt: skip
_WIN = get_window("hann", N_FFT)  # periodic Hann: sum of squares over hops of 128 is constant


# ----------------------------------------------------------------------------- STFT / ISTFT
def stft(x: np.ndarray) -> np.ndarray:
    """``(n_frames, N_FFT // 2 + 1)`` complex STFT of ``x``, padded by ``N_FFT`` both sides."""
    xp = np.pad(x, (N_FFT, N_FFT + (-len(x)) % HOP))
    frames = np.lib.stride_tricks.sliding_window_view(xp, N_FFT)[::HOP]
    return np.fft.rfft(frames * _WIN, axis=1)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    """Weighted overlap-add inverse of :func:`stft` (exact for an unmodified ``spec``)."""
    frames = np.fft.irfft(spec, N_FFT, axis=1) * _WIN
    total = (len(spec) - 1) * HOP + N_FFT
    out = np.zeros(total)
    norm = np.zeros(total)
    idx = np.arange(len(spec))[:, None] * HOP + np.arange(N_FFT)[None]
    np.add.at(out, idx.ravel(), frames.ravel())
    np.add.at(norm, idx.ravel(), np.broadcast_to(_WIN**2, frames.shape).ravel())
    out /= np.maximum(norm, 1e-8)
    return out[N_FFT : N_FFT + n]


# ------------------------------------------------------------------------------- front ends
def ss_gain(power: np.ndarray) -> np.ndarray:
    """Spectral-subtraction gain ``(n_frames, n_bins)`` for the power spectrogram ``power``."""
    smooth = uniform_filter1d(power, SMOOTH_FRAMES, axis=0, mode="nearest")
    noise = np.percentile(smooth, PERCENTILE, axis=0, keepdims=True)
    gain = np.sqrt(np.maximum(1.0 - ALPHA * noise / np.maximum(power, 1e-20), FLOOR**2))
    return uniform_filter(gain, size=3, mode="nearest")


def eq_gain(mag: np.ndarray) -> np.ndarray:
    """Equalisation gain ``(1, n_bins)``: one over the per-bin median magnitude."""
    med = np.median(mag, axis=0, keepdims=True)
    med = np.maximum(med, EQ_FLOOR * med.max() + 1e-12)
    return 1.0 / med


def gains(spec: np.ndarray, variant: str) -> np.ndarray:
    """The real gain that ``variant`` applies to the STFT ``spec`` (broadcastable to it)."""
    mag = np.abs(spec)
    if variant == "ss":
        return ss_gain(mag**2)
    if variant == "eq":
        return eq_gain(mag)
    if variant == "sseq":
        return eq_gain(mag) * ss_gain(mag**2)  # ss gain is invariant to a per-bin scale
    raise ValueError(f"unknown variant {variant!r}")


def process(x: np.ndarray, variant: str) -> np.ndarray:
    """``x`` through front end ``variant``, scaled to the peak of ``x``."""
    spec = stft(x)
    y = istft(spec * gains(spec, variant), len(x))
    peak_in, peak_out = np.abs(x).max(), np.abs(y).max()
    return y * (peak_in / peak_out) if peak_out > 0 else y


# ------------------------------------------------------------------------------------- make
def _write_wav(path: Path, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".wav")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(y, -1.0, 1.0 - 2**-15), SR, subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make(variant: str, src: Path, out: Path) -> None:
    t0 = time.perf_counter()
    src, out = src.resolve(), out.resolve()
    note = {"variant": variant, "params": PARAMS, "source_benchmark": str(src),
            "script": "recipes/alarm_osc/local/frontend_bench.py"}  # fmt: skip
    man_out = out / "manifest.json"
    if man_out.is_file() and json.loads(man_out.read_text()).get("frontend") == note:
        print(f"{out}: up to date ({variant})")
        return
    wavs = sorted((src / "data").rglob("*.wav"))
    t_proc = 0.0
    for i, p in enumerate(wavs):
        x, sr = sf.read(str(p), dtype="float64")
        assert sr == SR and x.ndim == 1, (p, sr, x.shape)
        t1 = time.perf_counter()
        y = process(x, variant)
        t_proc += time.perf_counter() - t1
        _write_wav(out / p.relative_to(src), y)
        if (i + 1) % 200 == 0:
            print(f"{i + 1}/{len(wavs)} clips, {time.perf_counter() - t0:.0f} s", flush=True)
    # meta CSVs (relative paths) as they are; prepared CSVs with the absolute paths rewritten
    for p in sorted((src / "data" / "meta").rglob("*.csv")):
        _write_text(out / p.relative_to(src), p.read_text())
    n_csv = 0
    for p in sorted((src / "prepared").rglob("*.csv")):
        _write_text(out / p.relative_to(src), p.read_text().replace(f"{src}/", f"{out}/"))
        n_csv += 1
    man = json.loads((src / "manifest.json").read_text())
    note["n_clips"] = len(wavs)
    note["process_s_per_clip"] = round(t_proc / max(1, len(wavs)), 5)
    note["about"] = (
        f"every wav of {src} processed by the '{variant}' front end of frontend_bench.py (16-bit, "
        "peak of the input kept); prepared/*.csv point to this copy; the rest is the source's"
    )
    man["frontend"] = {k: note[k] for k in ("variant", "params", "source_benchmark", "script")}
    man["frontend_info"] = {k: note[k] for k in ("n_clips", "process_s_per_clip", "about")}
    _write_text(man_out, json.dumps(man, indent=1))
    if (src / ".sources").exists() and not (out / ".sources").exists():
        (out / ".sources").symlink_to(src / ".sources")
    print(f"{variant}: {len(wavs)} clips, {n_csv} prepared CSVs -> {out} in "
          f"{time.perf_counter() - t0:.1f} s ({1000 * note['process_s_per_clip']:.1f} ms/clip "
          "front end)")  # fmt: skip


# -------------------------------------------------------------------------------- val-index
def val_index(prepared: Path, out: Path) -> None:
    import whisper_prior

    whisper_prior.val_index(prepared, out)


# ----------------------------------------------------------------------------------- oracle
def render_parts(spec, sources, backgrounds, seed: int, index: int):
    """Foreground and background of ``render_clip`` (same seeds and order of draws), each
    after the microphone colouring and the final scaling, and the clip's info."""
    import zlib

    from scipy.signal import sosfilt

    from data_prep import make_alarm_real_bench as g

    key = zlib.crc32(spec.name.encode())
    device = np.random.default_rng([seed, key, 1, index // g.CLIPS_PER_DEVICE])
    clip = np.random.default_rng([seed, key, 2, index])
    speaker = g.speaker_colouring(device)
    drive = device.uniform(1.5, 4.0) if device.random() < 0.3 else 1.0
    gap_s = device.uniform(0.3, 2.0) if len(sources[0]) < 6 * SR else device.uniform(0.0, 0.5)
    if spec.kind == "tone":
        x = g.tone_signal(sources[0], gap_s, clip)
        x = g.soft_clip(sosfilt(speaker, x), drive)
    elif spec.kind == "events":
        x = g.events_signal(sources, spec.events, clip)
    else:
        x = g.excerpt_signal(sources, clip)
    b = int(clip.integers(len(backgrounds)))
    snr, peak = clip.uniform(*g.SNR_DB), clip.uniform(*g.PEAK_DBFS)
    bg = g.background_signal(backgrounds[b], clip)
    fg = x / np.sqrt(g._active_power(x))
    bg = bg * 10 ** (-snr / 20)
    scale1 = 10 ** (peak / 20) / np.abs(fg + bg).max()
    mic = g.mic_colouring(clip)
    fg, bg = sosfilt(mic, fg * scale1), sosfilt(mic, bg * scale1)
    scale2 = 10 ** (peak / 20) / np.abs(fg + bg).max()
    return fg * scale2, bg * scale2, {"background": b, "snr_db": snr, "kind": spec.kind}


def oracle(src: Path, out: Path | None, every: int) -> None:
    """Per class: how many STFT frames the foreground fills, the SNR before and after each front
    end (its gain, computed from the mix, applied to each part), the energy kept of each."""
    from data_prep import make_alarm_real_bench as g
    from data_prep.alarm_common import _load, _trim

    man = json.loads((src / "manifest.json").read_text())
    seed = man["config"]["seed"]
    packages = g.fetch_sources(Path(man["sources_dir"]), download=False)
    bgs = [
        _load(packages[s.package].root / p)
        for s in g.BACKGROUNDS
        for p in s.paths
        if p in packages[s.package].files
    ]
    rows = []
    t0 = time.perf_counter()
    for c in man["classes"]:
        spec = g.CLASSES[c["name"]]
        used = [(s, p) for s in spec.sources for p in s.paths if p in packages[s.package].files]
        sources = [_load(packages[s.package].root / p) for s, p in used]
        if spec.kind == "events":
            sources = [_trim(x) for x in sources]
        for i in range(0, c["n_clips"], every):
            fg, bg, info = render_parts(spec, sources, bgs, seed, i)
            stored, _ = sf.read(str(src / c["files"][i]), dtype="float64")
            err = np.abs(stored - (fg + bg)).max()
            assert err < 2e-4, (c["name"], i, err)  # 16-bit quantisation only
            F, B = stft(fg), stft(bg)
            pf, pb = (np.abs(F) ** 2).sum(1), (np.abs(B) ** 2).sum(1)
            rec = {"class": c["name"], "known": c["known"], "kind": spec.kind,
                   "background": info["background"], "snr_db": info["snr_db"],
                   "fg_frames": float(np.mean(pf > pb)),
                   "snr_in": 10 * np.log10((np.abs(F) ** 2).sum() / (np.abs(B) ** 2).sum())}  # fmt: skip
            for v in VARIANTS:
                gain = gains(F + B, v)
                ef, eb = (np.abs(gain * F) ** 2).sum(), (np.abs(gain * B) ** 2).sum()
                rec[f"{v}_snr"] = 10 * np.log10(ef / eb)
                if v == "ss":  # ss alone is a gain <= 1: energies kept are meaningful
                    rec["ss_fg_kept_db"] = 10 * np.log10(ef / (np.abs(F) ** 2).sum())
                    rec["ss_bg_kept_db"] = 10 * np.log10(eb / (np.abs(B) ** 2).sum())
            rows.append(rec)
    print(f"{len(rows)} clips re-rendered and checked in {time.perf_counter() - t0:.0f} s")
    by = defaultdict(list)
    for r in rows:
        by[r["class"]].append(r)
    cols = ["fg_frames", "snr_in", "ss_snr", "eq_snr", "sseq_snr", "ss_fg_kept_db", "ss_bg_kept_db"]
    lines = ["| class | kind | clips | fg > bg in frames (%) | SNR in (dB) | SNR after ss | "
             "after eq | after sseq | ss: fg energy kept (dB) | ss: bg energy kept (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def cells(rs):
        out = []
        for k in cols:
            v = np.mean([r[k] for r in rs])
            out.append(f"{100 * v:.0f}" if k == "fg_frames" else f"{v:.1f}")
        return out

    for name, rs in by.items():
        lines.append(f"| {name} | {rs[0]['kind']} | {len(rs)} | " + " | ".join(cells(rs)) + " |")
    for label, sel in (
        ("all known", lambda r: r["known"]),
        ("all unknown", lambda r: not r["known"]),
    ):
        rs = [r for r in rows if sel(r)]
        lines.append(f"| **{label}** | | {len(rs)} | " + " | ".join(cells(rs)) + " |")
    text = "\n".join(lines)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=0))
        out.with_suffix(".md").write_text(text + "\n")


# ------------------------------------------------------------------------------------ score
def _vmap(prepared: Path) -> dict:
    import whisper_prior as wp

    vmap = {}
    for s, folds in wp.read_index(prepared).items():
        for k, f in enumerate(wp.val_folds(len(folds)), 1):
            vmap[(s, f)] = k
    return vmap


def runs_table(path: Path) -> dict[str, dict[str, float]]:
    """Per setting mean (and std) of the metrics in a ``runs.jsonl``."""
    by = defaultdict(list)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        by[r["setting"]].append(r)
    return {s: {k: float(np.mean([r[k] for r in rs])) for k in
                ("wa", "acc_known", "acc_unknown", "acc_closed", "top1_auc")}
            | {"wa_std": float(np.std([r["wa"] for r in rs])), "n": len(rs)}
            for s, rs in by.items()}  # fmt: skip


def score(args: argparse.Namespace) -> None:
    """``--runs NAME=EXP_DIR[:PREPARED]`` (validation runs: EXP_DIR from ``run_settings.py
    --prepared <val-index>`` with ``--save-embeddings``; PREPARED the benchmark's prepared folder
    for the threshold grid). Prints the per-setting table at the recipe's thresholds and the
    single threshold chosen on these runs (grid 0.30-0.99)."""
    import whisper_prior as wp

    report = {}
    for spec in args.runs:
        name, _, rest = spec.partition("=")
        exp, _, prepared = rest.partition(":")
        exp = Path(exp)
        tab = runs_table(exp / "runs.jsonl")
        rec = {"recipe_thr": tab, "recipe_thr_wa": float(np.mean([tab[s]["wa"] for s in tab]))}
        if prepared and (exp / "embeddings").is_dir():
            prepared = Path(prepared)
            which = args.which
            runs = wp.load_runs(prepared, which)
            vmap = _vmap(prepared) if which == "val" else None
            cache = {id(r): wp.pretrained_sims(exp, r, vmap) for r in runs}
            if all(v is not None for v in cache.values()):
                curve = wp.curves(runs, lambda r, c=cache: c[id(r)])
                thr, wa, per_level, lev_wa = wp.choose(curve)
                rec["best_single_thr"] = {"threshold": thr, "wa": wa}
                rec["best_per_level"] = {"thresholds": per_level, "wa": lev_wa}
                if args.at is not None:
                    recs = wp.evaluate(
                        runs, lambda r, c=cache: c[id(r)], dict.fromkeys(wp.LEVELS, args.at)
                    )
                    rec[f"at_{args.at}"] = float(np.mean([x["wa"] for x in recs]))
                    rec[f"at_{args.at}_table"] = wp.table(recs)[0]
        report[name] = rec
        extra = ""
        if "best_single_thr" in rec:
            b = rec["best_single_thr"]
            extra = f"; best single threshold {b['threshold']:.2f} -> {100 * b['wa']:.1f} %"
        if f"at_{args.at}" in rec:
            extra += f"; at {args.at}: {100 * rec[f'at_{args.at}']:.1f} %"
        print(f"{name}: {100 * rec['recipe_thr_wa']:.1f} % at the recipe's thresholds{extra}")
    settings = [s for s in wp.SETTINGS if all(s in r["recipe_thr"] for r in report.values())]
    names = list(report)
    lines = ["| setting | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for s in settings:
        lines.append(f"| {s} | " + " | ".join(
            f"{100 * report[n]['recipe_thr'][s]['wa']:.1f} ({100 * report[n]['recipe_thr'][s]['acc_known']:.1f} / "
            f"{100 * report[n]['recipe_thr'][s]['acc_unknown']:.1f})" for n in names) + " |")  # fmt: skip
    for k, label in (("wa", "mean WA"), ("acc_known", "known acc."), ("acc_unknown", "unknown rej."),
                     ("acc_closed", "closed-set"), ("top1_auc", "top-1 AUC")):  # fmt: skip
        lines.append(f"| **{label}** | " + " | ".join(
            f"**{100 * np.mean([report[n]['recipe_thr'][s][k] for s in settings]):.1f}**"
            for n in names) + " |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        args.out.with_suffix(".md").write_text(text + "\n")


# --------------------------------------------------------------------------------- diagnose
def diagnose(args: argparse.Namespace) -> None:
    """Nearest known shot shares the known test clip's background? (saved embeddings of the
    runs of ``--exp`` on the test or validation folds of ``--prepared``)."""
    import whisper_prior as wp

    bench = args.prepared.parent
    info = wp.clip_info(bench)
    runs = wp.load_runs(args.prepared, args.which)
    vmap = _vmap(args.prepared) if args.which == "val" else None
    same_bg, right, recs = wp.nearest_known_shots(
        runs, lambda r: wp.pretrained_sims(args.exp, r, vmap), info
    )
    snr = np.array([d["snr_db"] for d in recs])
    bins = {"snr<11": snr < 11, "11-19": (snr >= 11) & (snr < 19), "snr>=19": snr >= 19}
    res = {"exp": str(args.exp), "which": args.which, "n": int(len(right)),
           "same_bg": float(same_bg.mean()), "same_bg_errors": float(same_bg[~right].mean()),
           "same_bg_right": float(same_bg[right].mean()), "closed": float(right.mean()),
           "closed_by_snr": {k: float(right[m].mean()) for k, m in bins.items()}}  # fmt: skip
    print(json.dumps(res))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--variant", choices=VARIANTS, required=True)
    m.add_argument("--src", type=Path, default=Path("data/alarm_real"))
    m.add_argument("--out", type=Path, required=True)
    v = sub.add_parser("val-index")
    v.add_argument("--prepared", type=Path, required=True)
    v.add_argument("--out", type=Path, required=True)
    o = sub.add_parser("oracle")
    o.add_argument("--src", type=Path, default=Path("data/alarm_real"))
    o.add_argument("--out", type=Path, default=None, help="per-clip JSON (+ .md table)")
    o.add_argument("--every", type=int, default=1, help="every n-th clip of each class")
    s = sub.add_parser("score")
    s.add_argument("--runs", nargs="+", required=True, help="NAME=EXP_DIR[:PREPARED]")
    s.add_argument("--which", choices=("val", "test"), default="val")
    s.add_argument("--at", type=float, default=None, help="also score this single threshold")
    s.add_argument("--out", type=Path, default=None)
    d = sub.add_parser("diagnose")
    d.add_argument("--prepared", type=Path, required=True)
    d.add_argument("--exp", type=Path, required=True)
    d.add_argument("--which", choices=("val", "test"), default="test")
    args = p.parse_args(argv)
    if args.cmd == "make":
        make(args.variant, args.src, args.out)
    elif args.cmd == "val-index":
        val_index(args.prepared, args.out)
    elif args.cmd == "oracle":
        oracle(args.src, args.out, args.every)
    elif args.cmd == "score":
        score(args)
    else:
        diagnose(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
