"""Few-shot keyword spotting: enroll a few shots per keyword, find the keywords in long recordings.

Pipeline (Diss. 6.3.3-6.3.6): audio frontend (:mod:`kwsos.audio`) -> frame features (a
registered :class:`~kwsos.features.FeatureExtractor`: HFCC by default, MFCC, or TACos / L_kw /
sliding-window embeddings from a network trained on the enrolled shots,
:mod:`kwsos.embeddings.temporal`) -> a keyword detector (:class:`~kwsos.backends.base.Detector`:
subsequence DTW of every enrolled shot against the recording,
:class:`~kwsos.backends.sdtw.SubsequenceDTWDetector`, or the sliding-window baseline) -> one
global threshold on the match cost (optionally one per keyword; tuned by
:func:`kwsos.thresholds.tune_f1`) -> events.

A :class:`KeywordSpotter` is saved as a *keyword bank*: a portable directory ::

    bank.json                 format (kwsos-bank/2), kwsos version, config, keywords, shot list
    shots/kw000_shot0.wav     the enrolled shots, 16 kHz mono float WAV, trimmed
    templates/kw000_shot0.npy their feature sequences (n_frames, dim), float32
    model.pt                  learned features only: the embedding network's weights
    whisper_head.npz          whisper-tacos only: the head's weights (numpy, read without torch)

Saving builds the whole new bank in a temporary sibling directory and swaps it in with renames,
so a failing command never leaves a bank half-written. Banks of format ``kwsos-bank/1`` (flat
configuration, kwsos 0.1.0) still load.

Score convention: the detector reports a *cost* (cosine distance, lower = better match) and the
thresholds are costs; see :mod:`kwsos.backends.base`.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kwsos import __version__
from kwsos.audio import (
    SAMPLE_RATE,
    audio_info,
    load_clip,
    stream_audio,
    trim_silence,
    write_audio,
)
from kwsos.backends.base import DEFAULT_STEPS, Detector, detector_class
from kwsos.config import Config
from kwsos.embeddings.temporal import EmbeddingTrainingConfig
from kwsos.errors import KwsosError
from kwsos.events import Event
from kwsos.features import FeatureExtractor, extractor_from_dict, get_extractor
from kwsos.hooks import Hook, call_hook
from kwsos.io import umask_mode
from kwsos.metrics import EventScores, event_based_scores, event_match_counts, file_key
from kwsos.parallel import ordered_map, single_threaded_blas
from kwsos.tasks.jobs import DetectJob  # noqa: F401  (re-exported: the job of this task)

__all__ = [
    "BankError",
    "DetectJob",
    "DecisionConfig",
    "DetectorConfig",
    "KeywordSpotter",
    "ShotFrontendConfig",
    "SpotterConfig",
    "TuneResult",
    "default_features",
]

log = logging.getLogger(__name__)

BANK_FILE = "bank.json"
MODEL_FILE = "model.pt"
#: Range of the detectors' match costs (cosine distances), so of every threshold.
MIN_COST, MAX_COST = 0.0, 2.0
#: A shot longer than this (seconds of sound after trimming) is warned about: shots are words.
LONG_SHOT_S = 2.5
#: Shots of one keyword whose lengths differ by more than this factor are warned about.
UNEVEN_SHOTS = 3.0
#: Largest DTW step accepted in a configuration.
MAX_STEP = 4
BANK_VERSION = 2
BANK_FORMAT = f"kwsos-bank/{BANK_VERSION}"


class BankError(KwsosError):
    """A missing, empty or inconsistent keyword bank, or an unknown keyword."""


@dataclass(frozen=True)
class ShotFrontendConfig(Config):
    """How shots and recordings enter the spotter (after :mod:`kwsos.audio`'s frontend).

    Attributes
    ----------
    trim_top_db
        Trim each shot to the part within this many dB of its loudest 25 ms frame
        (:func:`kwsos.audio.trim_silence`); ``None`` keeps shots as recorded.
    min_shot_s
        Shorter (trimmed) shots are rejected.
    block_s
        Block length for streaming recordings.
    """

    trim_top_db: float | None = 35.0
    min_shot_s: float = 0.1
    block_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.block_s <= 3600:
            raise KwsosError(f"block_s must be between 0.1 and 3600 seconds, got {self.block_s}")
        if self.trim_top_db is not None and not 0 < self.trim_top_db <= 200:
            raise KwsosError(f"trim_top_db must be in (0, 200] dB or null, got {self.trim_top_db}")
        if not 0 <= self.min_shot_s <= 60:
            raise KwsosError(f"min_shot_s must be in [0, 60] seconds, got {self.min_shot_s}")


@dataclass(frozen=True)
class DetectorConfig(Config):
    """The keyword detector (:mod:`kwsos.backends`).

    Attributes
    ----------
    name
        ``"sdtw"``: subsequence DTW against every shot (Diss. 6.3.6); ``"sliding"``: the
        sliding-window baseline (Diss. 6.3.7; scores the frames' segment vectors against the
        keyword centres of a network trained with ``--features sliding``).
    steps
        DTW step sizes ``(template frames, recording frames)``.
    min_duration_ratio
        DTW detections shorter than this fraction of the matched shot are dropped.
    templates
        ``"shots"``: every shot is a template (paper); ``"dba"``: one DTW-barycenter average per
        keyword (the paper found it worse; offered for speed with many shots).
    """

    name: str = "sdtw"
    steps: tuple[tuple[int, int], ...] = DEFAULT_STEPS
    min_duration_ratio: float = 0.5
    templates: str = "shots"

    def __post_init__(self) -> None:
        if self.name not in ("sdtw", "sliding"):
            raise KwsosError(f"detector must be 'sdtw' or 'sliding', got {self.name!r}")
        if self.templates not in ("shots", "dba"):
            raise KwsosError(f"templates must be 'shots' or 'dba', got {self.templates!r}")
        try:
            steps = tuple((int(di), int(dj)) for di, dj in self.steps)
        except (TypeError, ValueError):
            raise KwsosError(f"steps must be (di, dj) integer pairs, got {self.steps!r}") from None
        if (
            not steps
            or len(set(steps)) != len(steps)
            or any(not (1 <= di <= MAX_STEP and 1 <= dj <= MAX_STEP) for di, dj in steps)
        ):
            raise KwsosError(
                f"steps must be distinct (di, dj) pairs with 1 <= di, dj <= {MAX_STEP}, got "
                f"{[list(s) for s in steps]}"
            )
        object.__setattr__(self, "steps", steps)
        if not 0 <= self.min_duration_ratio <= 10:
            raise KwsosError(
                f"min_duration_ratio must be in [0, 10], got {self.min_duration_ratio}"
            )


@dataclass(frozen=True)
class DecisionConfig(Config):
    """Decision thresholds on the detector's match cost (lower = better match).

    Attributes
    ----------
    threshold
        Global threshold, tuned on validation data by :meth:`KeywordSpotter.tune` (Diss. 6.3.6:
        one global threshold, individual thresholds did not help).
    keyword_thresholds
        Optional per-keyword thresholds that override ``threshold`` for their keyword
        (``tune(..., per_keyword=True)``; Diss. Table 31 reports both variants).
    """

    threshold: float = 0.5
    keyword_thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kt = {str(k): check_cost_threshold(v) for k, v in dict(self.keyword_thresholds).items()}
        object.__setattr__(self, "threshold", check_cost_threshold(self.threshold))
        object.__setattr__(self, "keyword_thresholds", kt)


def check_cost_threshold(value: Any) -> float:
    """``value`` as a float threshold on the detectors' match cost; a value that is not finite
    or not in ``[MIN_COST, MAX_COST]`` is a :class:`KwsosError`."""
    v = float(value)
    if not (np.isfinite(v) and MIN_COST <= v <= MAX_COST):
        raise KwsosError(
            f"threshold must be a match cost in [{MIN_COST:g}, {MAX_COST:g}] (a cosine "
            f"distance), got {value}"
        )
    return v


def _hfcc() -> FeatureExtractor:
    return get_extractor("hfcc")


@dataclass(frozen=True)
class SpotterConfig(Config):
    """Everything that defines a keyword spotter apart from its shots, in sections.

    Attributes
    ----------
    frontend
        Shot trimming and streaming (:class:`ShotFrontendConfig`).
    features
        The frame features, a :class:`~kwsos.features.FeatureExtractor` (saved with its
        ``to_dict``): HFCC by default (the best F1 we measured so far, see README "TACos
        status"), or learned embeddings (``default_features("tacos")``) trained when keywords
        are enrolled. A learned extractor carries its trained network (not part of the dict).
    training
        How learned features are trained (:class:`~kwsos.embeddings.temporal.EmbeddingTrainingConfig`);
        unused for HFCC / MFCC.
    backend
        The keyword detector (:class:`DetectorConfig`).
    decision
        The thresholds (:class:`DecisionConfig`).
    """

    frontend: ShotFrontendConfig = field(default_factory=ShotFrontendConfig)
    features: FeatureExtractor = field(default_factory=_hfcc)
    training: EmbeddingTrainingConfig = field(default_factory=EmbeddingTrainingConfig)
    backend: DetectorConfig = field(default_factory=DetectorConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)

    _decoders = {"features": extractor_from_dict}

    def __post_init__(self) -> None:
        if isinstance(self.features, Mapping):
            object.__setattr__(self, "features", extractor_from_dict(dict(self.features)))
        if not isinstance(self.features, FeatureExtractor):
            raise KwsosError(f"features must be a feature extractor, got {self.features!r}")

    @classmethod
    def for_features(cls, name: str, **options: Any) -> SpotterConfig:
        """The default configuration for a ``--features`` choice (:func:`default_features`;
        ``sliding`` also selects the sliding-window detector)."""
        backend = DetectorConfig(name="sliding" if name == "sliding" else "sdtw")
        features = default_features(name, **options)
        if name == "whisper-tacos":
            return cls(
                features=features,
                backend=backend,
                training=whisper_head_training(),
                decision=DecisionConfig(threshold=WHISPER_HEAD_THRESHOLD),
            )
        return cls(features=features, backend=backend)

    @classmethod
    def from_v1(cls, d: Mapping[str, Any]) -> SpotterConfig:
        """The flat configuration of a ``kwsos-bank/1`` bank (kwsos 0.1.0)."""
        d = dict(d)
        sections = {
            "frontend": ("trim_top_db", "min_shot_s", "block_s"),
            "backend": ("steps", "min_duration_ratio", "templates"),
            "decision": ("threshold", "keyword_thresholds"),
        }
        out: dict[str, Any] = {name: {} for name in sections}
        for name, keys in sections.items():
            for key in keys:
                if key in d:
                    out[name][key] = d.pop(key)
        features = d.pop("features", None) or _hfcc().to_dict()
        if not isinstance(features, Mapping):
            raise KwsosError(f"features must be a mapping of options, got {features!r}")
        out["features"] = features
        out["training"] = d.pop("training", None) or {}
        if d:
            raise KwsosError(f"unknown option(s) in a kwsos-bank/1 config: {', '.join(sorted(d))}")
        if features.get("name") == "embedding" and features.get("kind") == "sliding":
            out["backend"]["name"] = "sliding"
        return cls.from_dict(out)


def whisper_head_training() -> EmbeddingTrainingConfig:
    """The training settings of the ``whisper-tacos`` head (chosen on the validation splits of
    KWS-TTS and the demo, within the 30 s enrollment budget; recipes/kws_tts/RESULTS.md)."""
    from kwsos.embeddings.temporal import DEFAULT_TRAIN

    return EmbeddingTrainingConfig(
        n_centers=WHISPER_HEAD_CENTERS,
        # fp32: the head is small, and bf16 (chosen by "auto" on CPUs with AMX units) would
        # make the trained head, and so the F1, depend on the machine
        train=replace(DEFAULT_TRAIN, max_steps=WHISPER_HEAD_STEPS, precision="fp32"),
    )


#: Defaults of the whisper-tacos head's training (see :func:`whisper_head_training`).
WHISPER_HEAD_CENTERS = 4
WHISPER_HEAD_STEPS = 500
#: The untuned threshold of a whisper-tacos bank: about the median of the thresholds tuned on
#: the validation splits of KWS-TTS (0.295), KWS-TTS with matched voices (0.232) and the demo
#: (0.373). Tune it on your own recordings (kwsos tune).
WHISPER_HEAD_THRESHOLD = 0.3
#: The ``--features`` of a new bank made by ``kwsos enroll`` and of ``kwsos demo``: the best
#: system on the validation splits of every benchmark (README "Which features"). The library's
#: ``SpotterConfig()`` keeps HFCC: no training and no encoder model needed.
DEFAULT_FEATURES = "whisper-tacos"

#: ``--features`` choices: learned (trained on the shots) and hand-crafted.
LEARNED_FEATURES = ("tacos", "lkw", "sliding", "whisper-tacos")
FEATURE_CHOICES = (*LEARNED_FEATURES, "hfcc", "mfcc", "whisper")


def default_features(name: str, **options: Any) -> FeatureExtractor:
    """The feature extractor of a ``--features`` choice.

    ``tacos`` / ``lkw`` are embeddings from a network trained with the TACos loss or the
    keyword-only loss (no trained network yet), searched with DTW; ``sliding`` is the
    sliding-window baseline (segment vectors scored against the keyword centres, no DTW);
    ``hfcc`` / ``mfcc`` are the hand-crafted baselines. ``options`` override extractor fields (e.g. ``mode="exact"``).
    """
    if name == "sliding":
        return get_extractor("embedding", kind=name, **{"mode": "exact", **options})
    if name == "whisper-tacos":
        return get_extractor("whisper_tacos", **options)
    if name in LEARNED_FEATURES:
        return get_extractor("embedding", kind=name, **options)
    if name in ("hfcc", "mfcc", "whisper"):
        return get_extractor(name, **options)
    raise KwsosError(f"unknown features {name!r}; choose one of {', '.join(FEATURE_CHOICES)}")


@dataclass(frozen=True)
class TuneResult:
    """Outcome of :meth:`KeywordSpotter.tune`: the chosen threshold and the F1 curve it came from."""

    threshold: float
    scores: EventScores
    thresholds: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    #: Per-keyword thresholds (``tune(..., per_keyword=True)``); ``scores`` are then the
    #: validation scores with them, and ``global_scores`` those of the global threshold alone.
    keyword_thresholds: dict[str, float] = field(default_factory=dict)
    global_scores: EventScores | None = None


@dataclass
class _Keyword:
    shots: list[np.ndarray]  # trimmed 16 kHz waves
    sources: list[str]
    templates: list[np.ndarray] | None = None  # (n_frames, dim) per template


def _check_keyword_name(keyword: str) -> str:
    name = " ".join(str(keyword).split())
    if not name:
        raise KwsosError("keyword must not be empty")
    if any(c in name for c in ',\t"') or not name.isprintable():
        raise KwsosError(
            f"keyword {keyword!r} must not contain commas, tabs, quotes or control characters"
        )
    return name


class KeywordSpotter:
    """Enroll keywords from a few shots and detect them, with onsets and offsets, in recordings.

    Examples
    --------
    >>> spotter = KeywordSpotter()
    >>> spotter.enroll("weather", ["w1.wav", "w2.wav", "w3.wav", "w4.wav", "w5.wav"])  # doctest: +SKIP
    >>> spotter.detect("long.flac")  # doctest: +SKIP
    [Event(filename='long.flac', onset=3.215, offset=3.71, label='weather', cost=0.21), ...]
    >>> spotter.save("my_bank")  # doctest: +SKIP
    """

    def __init__(self, config: SpotterConfig | None = None) -> None:
        self.config = config if config is not None else SpotterConfig()
        self._keywords: dict[str, _Keyword] = {}
        self._detector: Detector | None = None

    @property
    def extractor(self) -> Any:
        """The frame features (``config.features``; the one source of truth)."""
        return self.config.features

    def _set_features(self, extractor: FeatureExtractor) -> None:
        self.config = replace(self.config, features=extractor)

    # ------------------------------------------------------------------ enrollment
    @property
    def keywords(self) -> list[str]:
        return sorted(self._keywords)

    def n_shots(self, keyword: str) -> int:
        return len(self._get(keyword).shots)

    def shot_durations_s(self, keyword: str) -> list[float]:
        return [len(w) / SAMPLE_RATE for w in self._get(keyword).shots]

    def _get(self, keyword: str) -> _Keyword:
        try:
            return self._keywords[keyword]
        except KeyError:
            known = ", ".join(self.keywords) or "none"
            raise BankError(f"unknown keyword {keyword!r} (enrolled: {known})") from None

    def load_shot(self, shot: str | Path | np.ndarray) -> np.ndarray:
        """Load (or take) one shot, apply the frontend and trimming, check its length."""
        # files and arrays share one frontend (normalisation and 50 Hz high-pass)
        name = "array" if isinstance(shot, np.ndarray) else str(shot)
        if not isinstance(shot, np.ndarray):
            rate = audio_info(shot).sample_rate
            if rate < SAMPLE_RATE:
                log.warning(
                    "shot %s is sampled at %d Hz (narrow band); kwsos works at %d Hz and "
                    "such shots match 16 kHz recordings worse",
                    name,
                    rate,
                    SAMPLE_RATE,
                )
        wave = load_clip(shot, what="shot array")
        front = self.config.frontend
        if front.trim_top_db is not None:
            wave = trim_silence(wave, SAMPLE_RATE, top_db=front.trim_top_db)
        duration = len(wave) / SAMPLE_RATE
        if duration > LONG_SHOT_S:
            log.warning(
                "shot %s holds %.1f s of sound: a shot should be the keyword alone (about "
                "0.2-2 s); a longer one becomes a long template that matches long stretches",
                name,
                duration,
            )
        if duration < front.min_shot_s or self.extractor.n_frames(len(wave)) < 2:
            raise KwsosError(
                f"shot {name} is too short: {duration:.3f} s of sound, need at least "
                f"{front.min_shot_s:.2f} s"
            )
        return wave

    def enroll(
        self, keyword: str, shots: Sequence[str | Path | np.ndarray], *, replace_shots: bool = False
    ) -> KeywordSpotter:
        """Add shots of ``keyword`` (all are validated before anything changes).

        Parameters
        ----------
        keyword
            Label of the keyword; may contain spaces ("good morning").
        shots
            Audio files (any format/rate/channels soundfile reads) or 16 kHz arrays.
        replace_shots
            Replace the keyword's existing shots instead of adding to them.
        """
        name = _check_keyword_name(keyword)
        if not shots:
            raise KwsosError(f"no shots given for keyword {name!r}")
        waves = [self.load_shot(s) for s in shots]
        sources = ["array" if isinstance(s, np.ndarray) else Path(s).name for s in shots]
        lengths = [len(w) / SAMPLE_RATE for w in waves]
        if name in self._keywords and not replace_shots:
            lengths += self.shot_durations_s(name)
        if max(lengths) > UNEVEN_SHOTS * min(lengths):
            log.warning(
                "the shots of %r differ a lot in length (%.2f-%.2f s of sound): check that each "
                "holds the keyword alone, spoken once",
                name,
                min(lengths),
                max(lengths),
            )
        if name in self._keywords and not replace_shots:
            kw = self._keywords[name]
            kw.shots += waves
            kw.sources += sources
            kw.templates = None
        else:
            self._keywords[name] = _Keyword(waves, sources)
        self._detector = None
        return self

    def remove(self, keyword: str) -> KeywordSpotter:
        self._get(keyword)
        del self._keywords[keyword]
        kt = {k: v for k, v in self.config.decision.keyword_thresholds.items() if k != keyword}
        self.config = replace(
            self.config, decision=replace(self.config.decision, keyword_thresholds=kt)
        )
        self._detector = None
        return self

    def set_threshold(
        self, threshold: float, keyword_thresholds: dict[str, float] | None = None
    ) -> KeywordSpotter:
        """Set the global threshold and replace the per-keyword ones (none by default)."""
        decision = DecisionConfig(threshold=threshold, keyword_thresholds=keyword_thresholds or {})
        unknown = sorted(set(decision.keyword_thresholds) - set(self._keywords))
        if unknown:
            raise BankError(f"thresholds for keywords that are not enrolled: {', '.join(unknown)}")
        self.config = replace(self.config, decision=decision)
        if self._detector is not None:
            self._detector.threshold = decision.threshold
        return self

    @property
    def thresholds(self) -> np.ndarray:
        """The threshold of each keyword, in the detector's keyword order (``keywords_``)."""
        d = self.config.decision
        return np.array(
            [d.keyword_thresholds.get(str(k), d.threshold) for k in self.detector.keywords_],
            np.float64,
        )

    def set_templates(self, templates: str) -> KeywordSpotter:
        """Switch between ``"shots"`` and ``"dba"`` templates (re-extracted from the stored shots)."""
        self.config = replace(
            self.config, backend=replace(self.config.backend, templates=templates)
        )
        return self._drop_templates()

    def use_features(self, name: str, **options: Any) -> KeywordSpotter:
        """Switch to a ``--features`` choice (:meth:`SpotterConfig.for_features`: ``sliding``
        also selects the sliding-window detector); templates are re-extracted."""
        cfg = SpotterConfig.for_features(name, **options)
        backend = replace(self.config.backend, name=cfg.backend.name)
        changes: dict[str, Any] = {"features": cfg.features, "backend": backend}
        if type(cfg.features) is not type(self.config.features):
            # another family: its own training defaults and untuned threshold (costs of other
            # features are on another scale)
            changes["training"] = cfg.training
            changes["decision"] = cfg.decision
        self.config = replace(self.config, **changes)
        return self._drop_templates()

    def set_extractor(self, extractor: FeatureExtractor) -> KeywordSpotter:
        """Switch the features (templates are re-extracted from the stored shots)."""
        self._set_features(extractor)
        return self._drop_templates()

    # ------------------------------------------------------------------ learned features
    @property
    def learned(self) -> bool:
        """Whether the features are embeddings from a network trained on the shots (``tacos``,
        ``lkw``, ``sliding``, ``whisper-tacos``)."""
        return self.extractor.name == "embedding" or getattr(self.extractor, "trainable", False)

    @property
    def feature_name(self) -> str:
        """The ``--features`` choice: ``tacos``, ``lkw``, ``hfcc``, ``whisper-tacos``..."""
        ex = self.extractor
        return getattr(ex, "choice", None) or getattr(ex, "kind", ex.name)

    def _shot_counts(self) -> dict[str, int]:
        return {k: len(self._keywords[k].shots) for k in self.keywords}

    @property
    def needs_training(self) -> bool:
        """Learned features whose network is missing or was trained on other keywords/shots."""
        if not self.learned or not self._keywords:
            return False
        ex = self.extractor
        trained_on = ex.training.get("keywords") if ex.training else None  # type: ignore[attr-defined]
        # a network attached without training info (set_extractor) is taken as it is
        has_net = getattr(ex, "has_net", ex.net is not None)  # type: ignore[attr-defined]
        return not has_net or (trained_on is not None and trained_on != self._shot_counts())

    def training_config(self) -> EmbeddingTrainingConfig:
        """The training settings, with the extractor's kind and input normalisation."""
        cfg = self.config.training
        if self.extractor.name != "embedding":  # hand-crafted, or a head that sets no input
            return cfg
        # the extractor's settings are the ones inference uses: training must see the same input
        ex = self.extractor
        return replace(
            cfg,
            kind=self.feature_name,
            input_norm=getattr(ex, "input_norm", cfg.input_norm),
            input_norm_frames=getattr(ex, "input_norm_frames", cfg.input_norm_frames),
        )

    def set_training(self, **changes: Any) -> KeywordSpotter:
        """Change training settings (``EmbeddingTrainingConfig`` fields; ``train`` may be a dict
        of ``TrainConfig`` field changes). Takes effect at the next :meth:`train_features`."""
        cfg = self.training_config()
        train_changes = changes.pop("train", None)
        if train_changes:
            changes["train"] = replace(cfg.train, **train_changes)
        try:
            cfg = replace(cfg, **changes)
        except (TypeError, ValueError) as exc:
            raise KwsosError(f"invalid training settings: {exc}") from None
        self.config = replace(self.config, training=cfg)
        return self

    def train_features(
        self,
        *,
        backgrounds: Sequence[np.ndarray] = (),
        warm_start: bool = True,
        hook: Hook | None = None,
    ) -> Any:
        """Train the embedding network on the shots of all enrolled keywords (Diss. 6.3.4-6.3.5).

        The network is warm-started from the current one when there is one (the loss centres
        start fresh). Templates are re-extracted afterwards. Returns the
        :class:`~kwsos.training.TrainLog`.

        Parameters
        ----------
        backgrounds
            Extra "no speech" clips (16 kHz arrays) of the user's environment, used together
            with the built-in generated backgrounds.
        """
        from kwsos.embeddings.temporal import keyword_centres, train_keyword_embeddings

        if not self.learned:
            raise KwsosError(f"{self.extractor.name} features are not trained")
        if not self._keywords:
            raise BankError("no keywords enrolled; enroll keywords first")
        cfg = self.training_config()
        ex = self.extractor
        if hasattr(ex, "init_state"):  # a head kept as numpy weights (whisper-tacos)
            init = ex.init_state() if warm_start else None
        else:
            init = ex.net.state_dict() if (warm_start and ex.net is not None) else None  # type: ignore[attr-defined]
        shots = {k: self._keywords[k].shots for k in self.keywords}
        if ex.name != "embedding":  # a trainable head on other frames (whisper-tacos)
            from kwsos.embeddings.whisper import train_whisper_head

            try:
                net, tlog, info = train_whisper_head(
                    ex, shots, cfg, backgrounds=backgrounds, init_state=init, hook=hook
                )
            except ValueError as exc:
                raise KwsosError(str(exc)) from None
            info["keywords"] = self._shot_counts()
            self._set_features(replace(ex, training=info).with_net(net))  # type: ignore[call-arg,attr-defined]
            self._drop_templates()
            return tlog
        try:
            net, tlog, ts, loss = train_keyword_embeddings(
                shots, cfg, backgrounds=backgrounds, init_state=init, hook=hook
            )
        except ValueError as exc:  # bad device, no CUDA
            raise KwsosError(str(exc)) from None
        info: dict[str, Any] = {
            "keywords": self._shot_counts(),
            "classes": ts.classes,
            "n_positions": ts.n_positions,
            "n_segments": len(ts.x),
            "warm_start": init is not None,
            "config": cfg.to_dict(),
            "log": tlog.to_dict(),
        }
        centres = keyword_centres(cfg, loss, ts, self.keywords)
        if centres:
            info["centres"] = centres
        self._set_features(replace(ex, training=info).with_net(net))  # type: ignore[call-arg,attr-defined]
        self.config = replace(self.config, training=cfg)
        self._drop_templates()
        return tlog

    def set_inference(
        self,
        mode: str | None = None,
        hop_frames: int | None = None,
        *,
        precision: str | None = None,
        hfcc_weight: float | None = None,
    ) -> KeywordSpotter:
        """Switch learned features between ``exact``, ``hop`` and ``conv`` inference
        (:mod:`kwsos.embeddings`), the network's inference ``precision`` (``auto``, ``fp32``,
        ``bf16``) and/or the weight of HFCC fused into the embeddings
        (``EmbeddingFeatures.hfcc_weight``) without retraining; templates are re-extracted."""
        if self.extractor.name != "embedding":
            raise KwsosError("inference modes apply to learned features (tacos, lkw) only")
        changes: dict[str, Any] = {}
        if mode is not None:
            changes["mode"] = mode
        if hop_frames is not None:
            changes["hop_frames"] = int(hop_frames)
        if precision is not None:
            changes["precision"] = precision
        if hfcc_weight is not None:
            changes["hfcc_weight"] = float(hfcc_weight)
        try:
            ex = replace(self.extractor, **changes)
        except ValueError as exc:
            raise KwsosError(str(exc)) from None
        self._set_features(ex)
        return self._drop_templates()

    def _drop_templates(self) -> KeywordSpotter:
        for kw in self._keywords.values():
            kw.templates = None
        self._detector = None
        return self

    # ------------------------------------------------------------------ templates / detector
    def _templates(self, name: str) -> list[np.ndarray]:
        kw = self._keywords[name]
        if kw.templates is None:
            feats = [self.extractor.shot_features(w) for w in kw.shots]
            if self.config.backend.templates == "dba":
                from kwsos.backends.dtw import dba_template

                feats = [dba_template(feats)]
            kw.templates = feats
        return kw.templates

    def fit(self) -> KeywordSpotter:
        """Build the templates and the DTW detector (done lazily by :meth:`detect`).

        With learned features whose network is out of date (:attr:`needs_training`), the network
        is trained first (:meth:`train_features`, several minutes on a CPU).
        """
        if not self._keywords:
            raise BankError(
                "no keywords enrolled; enroll keywords first (kwsos enroll KEYWORD SHOT...)"
            )
        if self.needs_training:
            log.warning(
                "training the %s embedding network on %d keywords",
                self.feature_name,
                len(self._keywords),
            )
            self.train_features()
        templates, labels = [], []
        for name in self.keywords:
            for t in self._templates(name):
                templates.append(t)
                labels.append(name)
        self._detector = self._make_detector().fit(templates, labels)
        return self

    def _make_detector(self) -> Detector:
        """The configured detector, given every setting it takes from the backend config and
        the features (the sliding window's segment length and trained keyword centres)."""
        b, ex = self.config.backend, self.extractor
        available = {
            "threshold": self.config.decision.threshold,
            "steps": b.steps,
            "min_duration_ratio": b.min_duration_ratio,
            "segment_frames": getattr(ex, "segment_frames", None),
            "centres": (getattr(ex, "training", None) or {}).get("centres"),
        }
        cls = detector_class(b.name)
        accepted = inspect.signature(cls).parameters
        return cls(**{k: v for k, v in available.items() if k in accepted and v is not None})

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self.fit()
        assert self._detector is not None
        return self._detector

    # ------------------------------------------------------------------ detection
    def _check_recording(self, recording: str | Path) -> float:
        self.detector  # noqa: B018 - raises BankError when nothing is enrolled
        info = audio_info(recording)
        if info.sample_rate < SAMPLE_RATE:
            log.warning(
                "%s is sampled at %d Hz (narrow band, e.g. telephone): the shots are %d Hz "
                "wide-band, so expect fewer detections; enroll shots recorded the same way",
                recording,
                info.sample_rate,
                SAMPLE_RATE,
            )
        shortest = min(min(self.shot_durations_s(k)) for k in self.keywords)
        if info.duration_s < shortest:
            raise KwsosError(
                f"recording {recording} ({info.duration_s:.3f} s) is shorter than the shortest "
                f"enrolled shot ({shortest:.3f} s)"
            )
        return info.duration_s

    def _feature_stream(
        self, recording: str | Path, duration_s: float, hook: Hook | None
    ) -> Iterator[np.ndarray]:
        total = self.extractor.n_frames(int(round(duration_s * SAMPLE_RATE)))
        done = 0
        blocks = stream_audio(recording, block_s=self.config.frontend.block_s)
        for feats in self.extractor.stream(blocks):
            done += len(feats)
            call_hook(hook, "detect", completed=min(done, total), total=total)
            yield feats

    def _candidates(
        self, recording: str | Path, max_cost: float, hook: Hook | None
    ) -> tuple[np.ndarray, float]:
        duration = self._check_recording(recording)
        feats = self._feature_stream(recording, duration, hook)
        return self.detector.candidates(feats, max_cost=max_cost), duration

    def candidates(
        self, recording: str | Path, *, max_cost: float = np.inf, hook: Hook | None = None
    ) -> np.ndarray:
        """Raw DTW candidates (local minima of each keyword's cost curve), before thresholding."""
        with single_threaded_blas():
            return self._candidates(recording, max_cost, hook)[0]

    def cost_curves(self, recording: str | Path) -> tuple[np.ndarray, np.ndarray]:
        """Per-keyword match cost at every frame of ``recording``, for plots and diagnosis.

        DTW: the best shot's normalised path cost of a match ending at the frame; sliding
        window: the cosine distance of the frame's segment to the keyword centre. Lower is a
        better match; detections are the regions below the threshold (before post-processing).
        Holds the whole recording's features in memory (meant for single test files).

        Returns
        -------
        times : ndarray, shape (n_frames,)
            Frame centres in seconds.
        costs : ndarray, shape (n_keywords, n_frames)
            In the detector's keyword order (``detector.keywords_``); ``inf`` where no match ends.
        """
        duration = self._check_recording(recording)
        with single_threaded_blas():
            feats = np.concatenate(list(self._feature_stream(recording, duration, None)))
            costs = self.detector.cost_curves(feats)
        onset, offset = self.extractor.frame_bounds_s(np.arange(len(feats)), np.arange(len(feats)))
        return (onset + offset) / 2, costs

    def _to_events(
        self, recording: str | Path, dets: np.ndarray, duration_s: float | None = None
    ) -> list[Event]:
        keywords = self.detector.keywords_
        onset, offset = self.extractor.frame_bounds_s(dets["start"], dets["end"])
        if duration_s is not None:
            offset = np.minimum(offset, duration_s)
        name = Path(recording).name
        return [
            Event(name, float(on), float(off), str(keywords[k]), float(c))
            for on, off, k, c in zip(onset, offset, dets["keyword"], dets["cost"], strict=True)
        ]

    def _detect_one(self, recording: str | Path, thr: Any, hook: Hook | None = None) -> list[Event]:
        cands, duration = self._candidates(recording, float(np.max(thr)), hook)
        return self._to_events(recording, self.detector.postprocess(cands, thr), duration)

    def detect(
        self,
        recording: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        threshold: float | None = None,
        hook: Hook | None = None,
        jobs: int | None = None,
    ) -> list[Event]:
        """Detect every enrolled keyword in ``recording``; events sorted by onset.

        ``recording`` is one file, or a sequence of files: then the events of all of them, file
        by file in input order (:meth:`detect_many`, several files searched at once, ``jobs``;
        the ``hook`` then counts files). ``threshold`` overrides the bank's thresholds (global
        and per keyword) for this call. Memory stays bounded for recordings of any length (the
        audio, features and DTW are all streamed block by block).
        """
        if isinstance(recording, str | os.PathLike):
            thr = self._threshold_arg(threshold)
            with single_threaded_blas():
                return self._detect_one(recording, thr, hook)
        return [
            e
            for _, events in self.detect_many(recording, threshold=threshold, jobs=jobs, hook=hook)
            for e in events
        ]

    def detect_many(
        self,
        recordings: Iterable[str | os.PathLike[str]],
        *,
        threshold: float | None = None,
        jobs: int | None = None,
        hook: Hook | None = None,
    ) -> Iterator[tuple[str | os.PathLike[str], list[Event]]]:
        """Detect in many files, several at once; yields ``(recording, events)`` in input order
        as soon as a file and all files before it are done.

        ``jobs`` files are read, featurised and searched at the same time by threads of this
        process (default :func:`kwsos.parallel.default_jobs`: ``min(4, CPU cores)``; ``1``: one
        after the other); the templates, the numba kernels and a learned network are shared,
        loaded once. At most ``2 * jobs`` files are in flight, so memory stays bounded. numba's
        and torch's own thread pools are split between the workers
        (:func:`kwsos.parallel.ordered_map`) and BLAS runs on one thread meanwhile, as in
        :meth:`detect` (:func:`kwsos.parallel.single_threaded_blas`), so the events do not
        depend on ``jobs``: they equal those of :meth:`detect` file by file.
        ``hook("detect", completed=files_done, total=n_files)`` after each file. A file that
        cannot be read raises its error (a :class:`~kwsos.errors.KwsosError`) when its turn
        comes; the files after it are not searched.
        """
        recordings = list(recordings)
        thr = self._threshold_arg(threshold)  # builds the detector once, before any thread

        def one(rec: str | os.PathLike[str]) -> list[Event]:
            return self._detect_one(rec, thr)

        with single_threaded_blas():  # for the whole map: the limit is process-wide
            results = ordered_map(one, recordings, jobs=jobs)
            for i, (rec, events) in enumerate(zip(recordings, results, strict=True)):
                call_hook(hook, "detect", completed=i + 1, total=len(recordings))
                yield rec, events

    def _threshold_arg(self, threshold: float | None) -> Any:
        """The bank's thresholds (one per keyword) or the override, for ``postprocess``."""
        return self.thresholds if threshold is None else check_cost_threshold(threshold)

    def tune(
        self,
        recordings: Sequence[str | Path],
        reference: Sequence[Event],
        *,
        n_thresholds: int = 200,
        per_keyword: bool = False,
        n_keyword_thresholds: int = 40,
        passes: int = 2,
        hook: Hook | None = None,
        jobs: int | None = None,
    ) -> TuneResult:
        """Choose the threshold(s) that maximise event-based micro F1 on validation data.

        The detector runs once per recording (all candidates kept); each candidate threshold
        then only re-runs the cheap post-processing, scored with
        :func:`~kwsos.metrics.event_match_counts` (sed_eval's matching rule). The search is
        :func:`kwsos.thresholds.tune_f1` (the decision layer) with the recordings as units:
        a global threshold from ``n_thresholds`` quantiles of the candidate costs, and with
        ``per_keyword=True`` one threshold per keyword refined by coordinate ascent
        (``passes``, ``n_keyword_thresholds``), never below the global validation F1. The
        spotter's thresholds are set to the result. ``jobs`` recordings are searched at once
        (as in :meth:`detect_many`).
        """
        from kwsos.thresholds import tune_f1

        if not recordings:
            raise KwsosError("tune needs at least one validation recording")
        self.detector  # noqa: B018 - raises BankError when nothing is enrolled
        names = {file_key(str(r)) for r in recordings}
        ref = [e for e in reference if file_key(e.filename) in names]
        if not ref:
            raise KwsosError(
                "the reference has no events for the given recordings (file names must match)"
            )
        unknown = sorted({e.label for e in ref} - set(self.keywords))
        if unknown:
            log.warning(
                "reference labels not enrolled (they count as misses): %s", ", ".join(unknown)
            )
        per_rec = []
        with single_threaded_blas():
            found = ordered_map(lambda r: self._candidates(r, np.inf, None), recordings, jobs=jobs)
            for i, (rec, (cands, duration)) in enumerate(zip(recordings, found, strict=True)):
                per_rec.append((rec, duration, cands))
                call_hook(hook, "tune", completed=i + 1, total=len(recordings))
        files = [str(r) for r in recordings]
        ref_by_file: dict[str, list[Event]] = {}
        for e in ref:
            ref_by_file.setdefault(file_key(e.filename), []).append(e)

        def events(thr: Any) -> list[Event]:
            return [
                e
                for rec, dur, c in per_rec
                for e in self._to_events(rec, self.detector.postprocess(c, thr), dur)
            ]

        def file_counts(i: int, thr: Any) -> np.ndarray:
            rec, dur, c = per_rec[i]
            est = self._to_events(rec, self.detector.postprocess(c, thr), dur)
            counts = event_match_counts(ref_by_file.get(file_key(str(rec)), []), est)
            return np.array([sum(v[j] for v in counts.values()) for j in range(3)], np.int64)

        try:
            tuned = tune_f1(
                [c["cost"] for _, _, c in per_rec],
                [c["keyword"] for _, _, c in per_rec],
                file_counts,
                len(self.detector.keywords_),
                n_thresholds=n_thresholds,
                per_class=per_keyword,
                n_class_thresholds=n_keyword_thresholds,
                passes=passes,
                hook=hook,
            )
        except ValueError:
            raise KwsosError("no DTW match at all in the validation recordings") from None
        t_global = tuned.threshold
        global_scores = event_based_scores(ref, events(t_global), files=files)
        keyword_thresholds: dict[str, float] = {}
        scores = global_scores
        if tuned.class_thresholds is not None:
            keyword_thresholds = {
                str(kw): float(t)
                for kw, t in zip(self.detector.keywords_, tuned.class_thresholds, strict=True)
            }
            scores = event_based_scores(ref, events(tuned.class_thresholds), files=files)
        self.set_threshold(t_global, keyword_thresholds)
        return TuneResult(
            t_global,
            scores,
            tuned.grid,
            tuned.f1,
            tuned.precision,
            tuned.recall,
            keyword_thresholds,
            global_scores,
        )

    def tune_hfcc_weight(
        self,
        recordings: Sequence[str | Path],
        reference: Sequence[Event],
        weights: Sequence[float],
        *,
        per_keyword: bool = False,
        hook: Hook | None = None,
        jobs: int | None = None,
    ) -> tuple[float, dict[float, TuneResult]]:
        """Choose the weight of HFCC fused into learned embeddings on validation data.

        For every weight ``w`` in ``weights`` (``EmbeddingFeatures.hfcc_weight``: the DTW cost of
        a frame pair is ``(1 - w)`` times the cosine distance of the embeddings plus ``w`` times
        that of the HFCC; 0 = the embeddings alone) the threshold(s) are tuned with
        :meth:`tune`; the weight with the best tuned validation F1 wins (ties: the smaller
        weight) and the spotter keeps it with its thresholds. Returns the chosen weight and the
        tuning result of every weight. No retraining: only the templates are re-extracted.
        """
        if self.extractor.name != "embedding" or self.config.backend.name != "sdtw":
            raise KwsosError(
                "the HFCC weight applies to learned DTW features (tacos, lkw), "
                f"not {self.feature_name}"
            )
        grid = sorted({float(w) for w in weights})
        if not grid:
            raise KwsosError("give at least one HFCC weight")
        results: dict[float, TuneResult] = {}
        configs: dict[float, SpotterConfig] = {}
        for w in grid:
            self.set_inference(hfcc_weight=w)
            results[w] = self.tune(
                recordings, reference, per_keyword=per_keyword, hook=hook, jobs=jobs
            )
            configs[w] = self.config
        best = max(grid, key=lambda w: (results[w].scores.f1, -w))
        self.set_inference(hfcc_weight=best)
        self.config = configs[best]
        return best, results

    def evaluate(
        self,
        recordings: Sequence[str | Path],
        reference: Sequence[Event],
        *,
        threshold: float | None = None,
        hook: Hook | None = None,
        jobs: int | None = None,
    ) -> tuple[EventScores, list[Event]]:
        """Detect in ``recordings`` (``jobs`` at once, :meth:`detect_many`) and score against
        ``reference`` (event-based micro F1, sed_eval, files matched by base name). Returns the
        scores and the detections."""
        est: list[Event] = []
        found = self.detect_many(recordings, threshold=threshold, jobs=jobs)
        for i, (_, events) in enumerate(found):
            est += events
            call_hook(hook, "evaluate", completed=i + 1, total=len(recordings))
        return event_based_scores(list(reference), est, files=[str(r) for r in recordings]), est

    # ------------------------------------------------------------------ persistence
    def save(self, bank_dir: str | Path) -> None:
        """Write the keyword bank to ``bank_dir`` atomically (see module docstring).

        The bank gets the permissions a plain ``mkdir`` would (the user's umask). Temporary
        copies left beside it by a process that was killed while saving are removed.

        Raises
        ------
        BankError
            ``bank_dir`` is something else than a bank, or cannot be written (one line).
        """
        bank_dir = Path(bank_dir)
        check_bank_target(bank_dir)
        try:
            bank_dir.parent.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(bank_dir)
            tmp = Path(
                tempfile.mkdtemp(prefix=f".{bank_dir.name}.tmp-{os.getpid()}-", dir=bank_dir.parent)
            )
        except OSError as exc:
            raise BankError(
                f"cannot write keyword bank {bank_dir}: {exc.strerror or exc}"
            ) from None
        try:
            os.chmod(tmp, umask_mode(0o777))  # mkdtemp creates 0700
            self._write(tmp)
            _swap_dir(tmp, bank_dir)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BankError(
                f"cannot write keyword bank {bank_dir}: {exc.strerror or exc}"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write(self, out: Path) -> None:
        (out / "shots").mkdir()
        (out / "templates").mkdir()
        entries = {}
        stale = self.needs_training
        if hasattr(self.extractor, "write_net"):  # stored without torch (whisper-tacos)
            self.extractor.write_net(out)
        elif self.learned and self.extractor.net is not None:  # type: ignore[attr-defined]
            import torch

            torch.save(self.extractor.net.state_dict(), out / MODEL_FILE)  # type: ignore[attr-defined]
        for i, name in enumerate(self.keywords):
            kw = self._keywords[name]
            templates = [] if stale else self._templates(name)
            shots = []
            for j, (wave, src) in enumerate(zip(kw.shots, kw.sources, strict=True)):
                stem = f"kw{i:03d}_shot{j}"
                write_audio(out / "shots" / f"{stem}.wav", wave)
                shots.append(
                    {
                        "file": f"shots/{stem}.wav",
                        "source": src,
                        "duration_s": round(len(wave) / SAMPLE_RATE, 4),
                    }
                )
            tfiles = []
            for j, t in enumerate(templates):
                rel = f"templates/kw{i:03d}_t{j}.npy"
                np.save(out / rel, np.asarray(t, np.float32), allow_pickle=False)
                tfiles.append(rel)
            entries[name] = {"shots": shots, "templates": tfiles}
        meta = {
            "format": BANK_FORMAT,
            "kwsos_version": __version__,
            "config": self.config.to_dict(),
            "keywords": entries,
        }
        (out / BANK_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, bank_dir: str | Path) -> KeywordSpotter:
        """Read a keyword bank written by :meth:`save` (format ``kwsos-bank/2``, or ``/1``).

        Everything is validated before it is used: the format and its version, every
        configuration field (type and range), every keyword entry, every shot (a 16 kHz mono
        finite signal inside the bank) and every template (finite ``(n, dim)`` frames of the
        bank's features).

        Raises
        ------
        BankError
            One line naming the bank, and the file or field that is wrong: not a kwsos bank,
            written by a newer kwsos, or damaged.
        """
        bank_dir = Path(bank_dir)
        meta_path = bank_dir / BANK_FILE
        if not bank_dir.exists() and bank_dir.parent.is_dir():
            try:
                _remove_leftovers(bank_dir)  # restores a bank whose save was interrupted
            except OSError:
                pass
        if not meta_path.is_file():
            raise BankError(
                f"no keyword bank at {bank_dir} (missing {BANK_FILE}); create one with kwsos enroll"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BankError(f"keyword bank {bank_dir} is damaged: {BANK_FILE}: {exc}") from None
        fmt = meta.get("format") if isinstance(meta, dict) else None
        version = _format_version(fmt)
        if version is None:
            raise BankError(f"{bank_dir} is not a kwsos keyword bank (format {fmt!r})")
        if version > BANK_VERSION:
            raise BankError(
                f"keyword bank {bank_dir} was written by a newer kwsos (format {fmt}); this "
                f"kwsos {__version__} reads kwsos-bank/1 to {BANK_FORMAT}: upgrade kwsos"
            )
        try:
            if version == 1:
                config = SpotterConfig.from_v1(_field(meta, "config", dict))
            else:
                config = SpotterConfig.from_dict(_field(meta, "config", dict))
            spotter = cls(config)
            if hasattr(spotter.extractor, "read_net"):
                spotter._set_features(spotter.extractor.read_net(bank_dir))
            elif spotter.learned and (bank_dir / MODEL_FILE).is_file():
                spotter._set_features(
                    spotter.extractor.with_net(
                        _load_net(bank_dir / MODEL_FILE, spotter.extractor.net_arch)
                    )
                )
            dim = spotter.extractor.dim
            for name, entry in _field(meta, "keywords", dict).items():
                if not isinstance(entry, dict) or _check_keyword_name(name) != name:
                    raise ValueError(f"keywords: bad entry {name!r}")
                shot_rows = _field(entry, "shots", list, f"keywords[{name!r}]")
                if not shot_rows:
                    raise ValueError(f"keywords[{name!r}]: no shots")
                shots, sources = [], []
                for row in shot_rows:
                    if not isinstance(row, dict):
                        raise ValueError(f"keywords[{name!r}].shots: not a shot entry: {row!r}")
                    shots.append(_read_wave(_inside(bank_dir, _field(row, "file", str, name))))
                    sources.append(str(row.get("source", "")))
                files = _field(entry, "templates", list, f"keywords[{name!r}]")
                templates = [_read_template(_inside(bank_dir, t), dim) for t in files]
                if version == 1 and config.backend.name == "sliding":
                    templates = []  # /1 stored the keyword centres here; now the shots' features
                if (
                    templates
                    and config.backend.templates == "shots"
                    and len(templates) != len(shots)
                ):
                    raise ValueError(
                        f"keywords[{name!r}]: {len(templates)} templates for {len(shots)} shots"
                    )
                spotter._keywords[name] = _Keyword(shots, sources, templates or None)
        except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
            raise BankError(
                f"keyword bank {bank_dir} is damaged: {' '.join(str(exc).split())}"
            ) from None
        return spotter


def _load_net(path: Path, arch: dict[str, Any]) -> Any:
    import torch

    from kwsos.models import model_from_dict

    net = model_from_dict(arch or {"name": "TemporalResNet"})
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def _format_version(fmt: Any) -> int | None:
    """``N`` of a ``kwsos-bank/N`` format string, else None."""
    if not isinstance(fmt, str) or not fmt.startswith("kwsos-bank/"):
        return None
    tail = fmt.removeprefix("kwsos-bank/")
    return int(tail) if tail.isdigit() and int(tail) >= 1 else None


def _field(d: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    if key not in d:
        raise ValueError(f"{where + '.' if where else ''}{key} is missing")
    if not isinstance(d[key], kind):
        raise ValueError(f"{where + '.' if where else ''}{key} must be a {kind.__name__}")
    return d[key]


def _inside(bank_dir: Path, rel: Any) -> Path:
    """``bank_dir / rel`` for a relative path that stays inside the bank."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ValueError(f"file entry {rel!r} is not a path inside the bank")
    return bank_dir / rel


def _read_wave(path: Path) -> np.ndarray:
    import soundfile as sf

    try:
        wave, sr = sf.read(str(path), dtype="float32")
    except Exception as exc:  # soundfile raises several types
        raise ValueError(
            f"{path.name}: cannot read the shot ({' '.join(str(exc).split())})"
        ) from None
    if sr != SAMPLE_RATE or wave.ndim != 1 or not len(wave) or not np.all(np.isfinite(wave)):
        raise ValueError(f"{path.name} is not a finite 16 kHz mono shot")
    return wave


def _read_template(path: Path, dim: int) -> np.ndarray:
    try:
        t = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.name}: cannot read the template ({exc})") from None
    if (
        t.ndim != 2
        or t.shape[0] < 1
        or t.shape[1] != dim
        or not np.issubdtype(t.dtype, np.floating)
        or not np.all(np.isfinite(t))
    ):
        raise ValueError(
            f"{path.name}: expected finite float frames of shape (n, {dim}), got "
            f"{t.dtype} {t.shape}"
        )
    return t.astype(np.float32)


def _remove_leftovers(bank_dir: Path) -> None:
    """Clean up after a save whose process no longer runs (killed mid-save): a bank missing
    beside its old copy (``.NAME.old-PID``, killed between the two renames) gets it back; other
    temporary copies (``.NAME.tmp-PID-*``, ``.NAME.old-PID``) are removed. The lock file
    ``.NAME.lock`` is left alone."""
    for p in sorted(bank_dir.parent.glob(f".{bank_dir.name}.*")):
        rest = p.name[len(bank_dir.name) + 2 :]
        kind, _, tail = rest.partition("-")
        pid = tail.split("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or not p.is_dir():
            continue
        if int(pid) == os.getpid() or _alive(int(pid)):
            continue
        if kind == "old" and not bank_dir.exists() and (p / BANK_FILE).is_file():
            log.warning("restoring keyword bank %s from %s (a save was interrupted)", bank_dir, p)
            os.replace(p, bank_dir)
            continue
        log.info("removing a leftover copy of the bank: %s", p)
        shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_bank_target(target: Path) -> None:
    """Refuse to replace anything that is not a keyword bank (or an empty directory)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise BankError(f"{target} exists and is not a keyword bank directory")
    if any(target.iterdir()) and not (target / BANK_FILE).is_file():
        raise BankError(f"refusing to overwrite {target}: it is not empty and holds no {BANK_FILE}")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    where the system or file system cannot."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_dir(new: Path, target: Path) -> None:
    """Replace directory ``target`` by ``new``: one atomic exchange where the system has one
    (there is never a moment without a bank), else two renames (a save killed between them
    leaves the old bank as ``.NAME.old-PID``, which the next save or load restores)."""
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old bank
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
