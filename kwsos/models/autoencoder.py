"""The DCASE Task 2 autoencoder baseline (DCASE2020 and DCASE2022/23 official baselines).

Features: log-Mel power spectrogram in dB (128 Mel bins, window 1024, hop 512, power 2,
``10 * log10(mel + eps)``), every 5 consecutive frames concatenated into one 640-d vector (hop
one frame). Network: dense 128 x 4 -> bottleneck 8 -> dense 128 x 4 -> 640, batch
normalisation and ReLU after every layer but the output (the DCASE2023 PyTorch baseline,
``nttcslab/dcase2023_task2_baseline_ae``; the first DCASE2020 Keras release had 64 units and no
batch norm). Trained with the mean squared reconstruction error, Adam (lr 1e-3), 100 epochs,
batch 512 (2020) or 256 (2023). Anomaly score of a clip: the mean over its vectors of the mean
squared reconstruction error (higher = more anomalous).

Deviations from the official code: the Mel filterbank is kwsos's HTK-style one
(:func:`kwsos.features.spectral.mel_filterbank`) instead of librosa's Slaney-normalised one (a
constant dB offset per Mel bin); no 10 % validation split is held out (the baselines use it only
for logging and for fitting the gamma-distribution threshold, which lives in
:mod:`kwsos.thresholds` here).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kwsos.audio import SAMPLE_RATE
from kwsos.hooks import Hook
from kwsos.models.asd import LogMelSpectrogram
from kwsos.training import TrainConfig, TrainLog, pick_device, seed_everything, train

__all__ = ["AutoencoderDetector", "DcaseAutoencoder", "frame_vectors"]


def frame_vectors(logmel: torch.Tensor, frames: int) -> torch.Tensor:
    """Concatenate ``frames`` consecutive frames: ``(B, T, n_mels)`` -> ``(B, T - frames + 1,
    frames * n_mels)``, frame-major (``v[t, k * n_mels + m] = logmel[t + k, m]``) as in the
    baselines' ``file_to_vector_array``."""
    if logmel.shape[1] < frames:
        raise ValueError(f"need at least {frames} frames, got {logmel.shape[1]}")
    windows = logmel.unfold(1, frames, 1)  # (B, T', n_mels, frames)
    return windows.transpose(-1, -2).flatten(-2)


class DcaseAutoencoder(nn.Module):
    """Dense autoencoder of the DCASE baseline: ``(B, input_dim)`` -> reconstruction
    ``(B, input_dim)``.

    ``n_layers`` dense layers of ``hidden`` units, a ``bottleneck`` layer, ``n_layers`` dense
    layers of ``hidden`` units and a linear output layer; batch normalisation (momentum 0.01 in
    PyTorch's convention, eps 1e-3: Keras' defaults, as in the official code) and ReLU after
    every layer but the output.
    """

    def __init__(
        self, input_dim: int = 640, *, hidden: int = 128, bottleneck: int = 8, n_layers: int = 4
    ) -> None:
        super().__init__()
        self.input_dim, self.hidden = int(input_dim), int(hidden)
        self.bottleneck, self.n_layers = int(bottleneck), int(n_layers)

        def block(d_in: int, d_out: int) -> list[nn.Module]:
            return [
                nn.Linear(d_in, d_out),
                nn.BatchNorm1d(d_out, momentum=0.01, eps=1e-3),
                nn.ReLU(),
            ]

        enc: list[nn.Module] = []
        d = self.input_dim
        for _ in range(self.n_layers):
            enc += block(d, self.hidden)
            d = self.hidden
        enc += block(d, self.bottleneck)
        dec: list[nn.Module] = []
        d = self.bottleneck
        for _ in range(self.n_layers):
            dec += block(d, self.hidden)
            d = self.hidden
        dec.append(nn.Linear(d, self.input_dim))
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, input_dim)`` -> bottleneck codes ``(B, bottleneck)``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, input_dim)`` -> reconstruction ``(B, input_dim)``."""
        return self.decoder(self.encoder(x))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": type(self).__name__,
            "input_dim": self.input_dim,
            "hidden": self.hidden,
            "bottleneck": self.bottleneck,
            "n_layers": self.n_layers,
        }


Waves = Sequence[np.ndarray] | np.ndarray


class AutoencoderDetector:
    """Anomaly detector of the DCASE baseline: an autoencoder fitted on normal clips.

    scikit-learn conventions: ``__init__`` stores the arguments, :meth:`fit` returns ``self``,
    learned state ends in ``_`` (``model_``, ``log_``), :meth:`score_samples` returns anomaly
    scores (higher = more anomalous). One detector is trained per machine type (DCASE2020/23
    baselines) -- the caller groups the clips.

    Parameters
    ----------
    n_mels, frames
        Mel bins and consecutive frames per vector (128 x 5 = 640-d vectors).
    epochs, batch_size, lr
        Adam training (100 epochs; batch 512 for DCASE2020, 256 for DCASE2023; lr 1e-3).
    seed, device
        Seed of the weights and batch order; ``"auto"`` (CUDA when available), ``"cpu"``, ...
    hook
        Progress callback, ``hook("train", completed=epoch, total=epochs, loss=...)``.
    n_fft, hop, sample_rate
        STFT window and hop in samples (1024 / 512) at ``sample_rate`` (16 kHz).
    hidden, bottleneck
        Hidden units (128) and bottleneck size (8).

    Notes
    -----
    ``waves`` are mono float waveforms at ``sample_rate``: a ``(N, n_samples)`` array or a
    sequence of 1-D arrays of any lengths (each at least ``(frames - 1) * hop + 1`` samples).
    Training holds all vectors in memory (about 0.8 GB for 1000 clips of 10 s), as the
    official baselines do.
    """

    def __init__(
        self,
        n_mels: int = 128,
        frames: int = 5,
        epochs: int = 100,
        batch_size: int = 512,
        lr: float = 1e-3,
        seed: int = 0,
        device: str = "auto",
        hook: Hook | None = None,
        *,
        n_fft: int = 1024,
        hop: int = 512,
        sample_rate: int = SAMPLE_RATE,
        hidden: int = 128,
        bottleneck: int = 8,
    ) -> None:
        self.n_mels, self.frames = n_mels, frames
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.seed, self.device, self.hook = seed, device, hook
        self.n_fft, self.hop, self.sample_rate = n_fft, hop, sample_rate
        self.hidden, self.bottleneck = hidden, bottleneck

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments except ``hook`` (plain JSON-able values)."""
        return {
            "n_mels": self.n_mels,
            "frames": self.frames,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
            "device": self.device,
            "n_fft": self.n_fft,
            "hop": self.hop,
            "sample_rate": self.sample_rate,
            "hidden": self.hidden,
            "bottleneck": self.bottleneck,
        }

    # -- features ---------------------------------------------------------------------------

    def _frontend(self) -> LogMelSpectrogram:
        # amin = machine epsilon: the baselines compute log10(mel + sys.float_info.epsilon)
        return LogMelSpectrogram(
            n_mels=self.n_mels,
            n_fft=self.n_fft,
            hop=self.hop,
            sample_rate=self.sample_rate,
            amin=sys.float_info.epsilon,
        )

    def _vectors(self, waves: Waves, device: torch.device) -> list[torch.Tensor]:
        """One ``(n_vectors, frames * n_mels)`` float32 tensor per clip, on ``device``."""
        if isinstance(waves, np.ndarray) and waves.ndim == 1:
            raise ValueError("waves must be (n_clips, n_samples) or a sequence of 1-D clips")
        front = self._frontend().to(device)
        min_len = (self.frames - 1) * self.hop + 1
        out = []
        with torch.no_grad():
            for i, w in enumerate(waves):
                w = np.asarray(w, dtype=np.float32)
                if w.ndim != 1 or len(w) < max(min_len, self.n_fft // 2 + 1):
                    raise ValueError(
                        f"clip {i}: expected a mono waveform of at least "
                        f"{max(min_len, self.n_fft // 2 + 1)} samples, got shape {w.shape}"
                    )
                logmel = front(torch.from_numpy(w).to(device)[None])
                out.append(frame_vectors(logmel, self.frames)[0])
        return out

    # -- estimator ----------------------------------------------------------------------------

    def fit(self, waves: Waves) -> AutoencoderDetector:
        """Train the autoencoder on normal clips ``waves``; sets ``model_`` and ``log_``."""
        if len(waves) == 0:
            raise ValueError("no training clips")
        config = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            mixup=False,
            augment=False,
            seed=self.seed,
            device=self.device,
            precision="fp32",
        )
        x = torch.cat(self._vectors(waves, torch.device("cpu"))).numpy()
        seed_everything(self.seed)  # the weights' initialisation
        model = DcaseAutoencoder(x.shape[1], hidden=self.hidden, bottleneck=self.bottleneck)
        # The loop computes loss(model(x), x): the inputs are their own targets (no copy).
        self.log_: TrainLog = train(
            model,
            nn.MSELoss(),
            x,
            (x,),
            np.zeros(len(x), dtype=np.int64),
            config,
            hook=self.hook,
        )
        self.model_ = model.cpu().eval()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("AutoencoderDetector is not fitted: call fit() or from_dict()")

    def score_samples(self, waves: Waves) -> np.ndarray:
        """Anomaly score per clip ``(N,)``: mean over the clip's vectors of the mean squared
        reconstruction error. Higher = more anomalous."""
        self._check_fitted()
        device = pick_device(self.device)
        model = self.model_.to(device).eval()
        scores = []
        with torch.no_grad():
            for v in self._vectors(waves, device):
                err = (model(v) - v).square().mean()
                scores.append(float(err))
        self.model_ = model.cpu()
        return np.asarray(scores, dtype=np.float64)

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Parameters, network shape and weights as plain types and CPU tensors (``torch.save``
        with ``weights_only`` loading works)."""
        self._check_fitted()
        return {
            "name": type(self).__name__,
            "params": self.get_params(),
            "model": self.model_.to_dict(),
            "state": {k: v.detach().cpu().clone() for k, v in self.model_.state_dict().items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, hook: Hook | None = None) -> AutoencoderDetector:
        """Inverse of :meth:`to_dict`: a fitted detector (its ``log_`` is not restored)."""
        if d.get("name") != cls.__name__:
            raise ValueError(f"not an {cls.__name__} dict (name {d.get('name')!r})")
        det = cls(**d["params"], hook=hook)
        arch = {k: v for k, v in d["model"].items() if k != "name"}
        input_dim = arch.pop("input_dim")
        model = DcaseAutoencoder(input_dim, **arch)
        model.load_state_dict(d["state"])
        det.model_ = model.eval()
        return det
