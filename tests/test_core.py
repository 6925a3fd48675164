"""The layered core: no import loops, layers only import downwards, the library never prints,
the CLI starts without torch, strict configs, registries, and the shared decision layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kwsos.errors import KwsosError

PKG = Path(__file__).resolve().parent.parent / "kwsos"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in ("kwsos", "recipes", "data_prep", "benchmarks")}


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The kwsos module an imported name lives in (``kwsos.features.HFCC`` -> ``kwsos.features``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_loops_at_module_level():
    graph = {
        mod: {r for r in map(_resolve, _imports(path, top_level_only=True)) if r and r != mod}
        for mod, path in MODULES.items()
    }
    # a package imports its parent package's __init__ implicitly; that is not a loop
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph.get(m, ()):
            if m.startswith(n + "."):
                continue
            if state.get(n) == 1:
                raise AssertionError("import loop: " + " -> ".join(stack[stack.index(n) :] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


LAYER = {  # a module may import only from layers with a lower or equal number
    "kwsos.errors": 0, "kwsos.io": 0, "kwsos.hooks": 0, "kwsos.config": 0,
    "kwsos.parallel": 0, "kwsos.batch": 0, "kwsos._biquad": 0,
    "kwsos.audio": 1, "kwsos.events": 1, "kwsos.noise": 1, "kwsos.augment": 1,
    "kwsos.metrics": 1, "kwsos.plots": 1, "kwsos.training": 1, "kwsos.dcase": 1,
    "kwsos.features": 2, "kwsos.models": 2, "kwsos.losses": 2,
    "kwsos.embeddings": 3, "kwsos.backends": 3, "kwsos.thresholds": 3,
    "kwsos.tasks": 4, "kwsos.cli": 5,
}  # fmt: skip


def _layer(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in LAYER:
            return LAYER[key]
    return 0  # kwsos/__init__ (lazy re-exports only)


def test_layers_only_import_downwards_and_never_recipes():
    for mod, path in MODULES.items():
        if mod == "kwsos":
            continue
        for imp in _imports(path, top_level_only=False):
            assert not imp.startswith(("recipes", "data_prep", "benchmarks")), (mod, imp)
            target = _resolve(imp)
            if target is None or target == "kwsos":
                continue
            assert _layer(target) <= _layer(mod), f"{mod} (layer {_layer(mod)}) imports {target}"


def test_the_library_never_prints():
    for mod, path in MODULES.items():
        if mod.startswith("kwsos.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"{mod} calls print (line {node.lineno}); log instead")


#: Imported only by the commands that use them: torch/torchaudio for learned features and
#: training, numba when a DTW runs (or audio is filtered), scipy.signal (0.5 s) nowhere on the
#: keyword-spotting path, scipy.ndimage for the sliding-window detector, tslearn for DBA,
#: sklearn for threshold estimators, matplotlib for plots, sed_eval for scoring, scipy.fft
#: (0.14 s) only when cepstra are computed.
HEAVY = (
    "torch", "torchaudio", "numba", "scipy.signal", "scipy.ndimage", "scipy.fft", "tslearn",
    "sklearn", "matplotlib", "sed_eval", "kwsos.tasks.openset", "distributed", "dask",
    "pyarrow",
)  # fmt: skip


def _heavy_modules_after(code: str) -> list[str]:
    code += f"\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in r.stdout.strip().split(",") if m]


def test_cli_import_pulls_in_no_heavy_module():
    code = "import kwsos.cli, kwsos.tasks.kws, kwsos.backends.base, kwsos.parallel"
    assert _heavy_modules_after(code + "\nfrom kwsos.thresholds import tune_f1") == []


def test_listing_keywords_pulls_in_no_heavy_module():
    bank = Path(__file__).resolve().parent / "fixtures" / "bank_hfcc_v010"
    code = (
        "from typer.testing import CliRunner\nfrom kwsos.cli import app\n"
        f"r = CliRunner().invoke(app, ['keywords', '--bank', {str(bank)!r}])\n"
        "assert r.exit_code == 0, r.output"
    )
    assert _heavy_modules_after(code) == []


# ---------------------------------------------------------------------- configs
def test_every_config_rejects_an_unknown_key_by_name():
    from kwsos.embeddings.clip import ClipTrainingConfig
    from kwsos.embeddings.temporal import EmbeddingTrainingConfig
    from kwsos.tasks.kws import SpotterConfig
    from kwsos.tasks.openset import OpenSetConfig
    from kwsos.training import TrainConfig

    for cls in (
        SpotterConfig,
        OpenSetConfig,
        EmbeddingTrainingConfig,
        TrainConfig,
        ClipTrainingConfig,
    ):
        d = cls().to_dict()
        assert cls.from_dict(d) == cls()
        with pytest.raises(KwsosError, match="tresholdd"):
            cls.from_dict({**d, "tresholdd": 1})
    with pytest.raises(KwsosError, match=r"decision.*tresholdd"):
        SpotterConfig.from_dict({"decision": {"tresholdd": 0.3}})
    with pytest.raises(KwsosError, match=r"training\.train.*epoch"):
        SpotterConfig.from_dict({"training": {"train": {"epoch": 3}}})
    with pytest.raises(KwsosError, match="hfc_weight"):
        SpotterConfig.from_dict({"features": {"name": "embedding", "hfc_weight": 0.5}})


def test_flat_options_go_to_their_section():
    from kwsos.tasks.kws import SpotterConfig
    from kwsos.tasks.openset import OpenSetConfig

    c = OpenSetConfig.from_flat({"threshold": 0.6, "epochs": 3, "clip_s": 2.0, "ensemble": 2})
    assert (c.decision.threshold, c.training.epochs, c.frontend.clip_s, c.model.ensemble) == (
        0.6, 3, 2.0, 2,
    )  # fmt: skip
    assert OpenSetConfig.from_dict(c.to_dict()) == c
    s = SpotterConfig.from_flat({"threshold": 0.2, "templates": "dba", "block_s": 10.0})
    assert (s.decision.threshold, s.backend.templates, s.frontend.block_s) == (0.2, "dba", 10.0)
    with pytest.raises(KwsosError, match="nonsense"):
        OpenSetConfig.from_flat({"nonsense": 1})


def test_sliding_features_select_the_sliding_detector_and_v1_banks_keep_that():
    from kwsos.tasks.kws import SpotterConfig

    assert SpotterConfig.for_features("sliding").backend.name == "sliding"
    assert SpotterConfig.for_features("tacos").backend.name == "sdtw"
    flat = {"features": {"name": "embedding", "kind": "sliding", "mode": "exact"}, "threshold": 0.4}
    c = SpotterConfig.from_v1(flat)
    assert c.backend.name == "sliding" and c.decision.threshold == 0.4


# ---------------------------------------------------------------------- registries
def test_feature_registry():
    from dataclasses import dataclass
    from typing import ClassVar

    from kwsos.features import FeatureExtractor, get_extractor, register_extractor
    from kwsos.features.base import available_extractors

    assert {"hfcc", "mfcc", "logmel", "embedding"} <= set(available_extractors())

    @register_extractor
    @dataclass(frozen=True)
    class Energy(FeatureExtractor):
        name: ClassVar[str] = "test_energy"

        def _static(self, frames):
            return np.log(np.mean(frames**2, axis=1, keepdims=True) + 1e-10).astype(np.float32)

    ex = get_extractor("test_energy", hop_samples=320)
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert ex(x).shape == (ex.n_frames(16000), 1)
    with pytest.raises(KwsosError, match="unknown features 'nope'"):
        get_extractor("nope")
    with pytest.raises(KwsosError, match="win_sampels"):
        get_extractor("hfcc", win_sampels=400)


# ---------------------------------------------------------------------- shared frontend
def test_array_and_file_shots_get_the_same_frontend(tmp_path):
    import soundfile as sf

    from kwsos.audio import load_audio, load_clip
    from kwsos.tasks.kws import KeywordSpotter

    rng = np.random.default_rng(3)
    t = np.arange(8000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 300 * t) + 0.3 * np.sin(2 * np.pi * 20 * t)).astype(np.float32)
    x += 0.01 * rng.standard_normal(len(x)).astype(np.float32)
    sf.write(tmp_path / "shot.wav", x, 16000, subtype="FLOAT")
    from_file = load_audio(tmp_path / "shot.wav")
    np.testing.assert_allclose(load_clip(x), from_file, atol=1e-6)
    sp = KeywordSpotter()
    np.testing.assert_allclose(sp.load_shot(x), sp.load_shot(tmp_path / "shot.wav"), atol=1e-6)
    # the 50 Hz high-pass is applied: the 20 Hz component is (mostly) gone
    spec = np.abs(np.fft.rfft(load_clip(x)))
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    assert (
        spec[np.argmin(np.abs(freqs - 20))]
        < 0.25 * np.abs(np.fft.rfft(x / np.abs(x).max()))[np.argmin(np.abs(freqs - 20))]
    )


# ---------------------------------------------------------------------- decision layer
def _brute_f1(units, thr):
    hits = n_ref = n_est = 0
    for costs, refs in units:
        fired = costs <= thr
        n_est += int(fired.sum())
        hits += int((fired & refs).sum())
        n_ref += int(refs.sum())
    p = hits / n_est if n_est else 0.0
    r = hits / n_ref if n_ref else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def test_tune_f1_global_threshold_is_the_best_of_a_brute_force_sweep():
    from kwsos.thresholds import tune_f1

    rng = np.random.default_rng(1)
    units = []
    for _ in range(4):
        refs = rng.random(30) < 0.4
        costs = np.where(refs, rng.normal(0.3, 0.1, 30), rng.normal(0.55, 0.1, 30))
        units.append((costs, refs))

    def counts(i, thr):
        costs, refs = units[i]
        fired = costs <= thr
        return np.array([int((fired & refs).sum()), int(refs.sum()), int(fired.sum())])

    res = tune_f1([c for c, _ in units], [np.zeros(30, int) for _ in units], counts, 1,
                  n_thresholds=400)  # fmt: skip
    brute = [_brute_f1(units, t) for t in res.grid]
    np.testing.assert_allclose(res.f1, brute)
    assert _brute_f1(units, res.threshold) == pytest.approx(max(brute))
    # per class with one class: never below the global F1
    res2 = tune_f1([c for c, _ in units], [np.zeros(30, int) for _ in units], counts, 1,
                   n_thresholds=400, per_class=True)  # fmt: skip
    assert _brute_f1(units, res2.class_thresholds[0]) >= max(brute) - 1e-12


def test_tune_f1_hand_worked():
    from kwsos.thresholds import tune_f1

    # one unit, candidates at costs 0.1 (hit), 0.2 (false alarm), 0.3 (hit); 2 references
    costs = np.array([0.1, 0.2, 0.3])
    hit = np.array([True, False, True])

    def counts(i, thr):
        fired = costs <= thr
        return np.array([int((fired & hit).sum()), 2, int(fired.sum())])

    res = tune_f1([costs], [np.zeros(3, int)], counts, 1, n_thresholds=3)
    np.testing.assert_allclose(res.grid, [0.1, 0.2, 0.3])
    # F1 at 0.1: P 1, R 1/2 -> 2/3; at 0.2: P 1/2, R 1/2 -> 1/2; at 0.3: P 2/3, R 1 -> 4/5
    np.testing.assert_allclose(res.f1, [2 / 3, 1 / 2, 4 / 5])
    assert res.threshold == 0.3
    with pytest.raises(ValueError):
        tune_f1([np.array([np.inf])], [np.zeros(1, int)], counts, 1)


def test_cosine_scorer_is_the_max_similarity_per_class():
    from kwsos.backends import CosineScorer

    rng = np.random.default_rng(2)
    refs, labels = rng.standard_normal((7, 5)), np.array([0, 1, 1, 2, 0, 2, 2])
    q = rng.standard_normal((4, 5))
    s = CosineScorer().fit(refs, labels)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    full = unit(q) @ unit(refs).T
    want = np.stack([full[:, labels == k].max(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(s.class_similarities(q), want)
    np.testing.assert_allclose(s.score_samples(q), want.max(axis=1))
