"""Generate the bundled kwsos demo data with local text-to-speech engines (:mod:`data_prep.tts`).

The script writes, under ``out_dir``:

* ``shots/<keyword>/<keyword>_<k>.wav``: five isolated enrolment examples per keyword,
  each spoken by a different voice of :data:`SHOT_VOICES` (voice set A);
* ``long.flac``: a long recording in which every keyword occurs 5-6 times among other
  speech spoken by :data:`LONG_VOICES` (voice set B, disjoint from set A), mixed with
  generated background noise at 15-20 dB SNR;
* ``reference.csv``: the onset/offset of every keyword occurrence (DCASE / sed_eval format);
* ``transcript.csv``: every spoken chunk of ``long.flac`` with its voice and text.

The long recording is built by concatenating separately synthesised, silence-trimmed chunks,
so the keyword boundaries in ``reference.csv`` are exact to the sample (rounded to 1 ms).

Usage::

    python -m data_prep.make_demo --out demo --seed 0
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.tts import SAMPLE_RATE, Style, Voice, check_engines, speak
from kwsos.noise import background_noise, colored_noise

PEAK_LEVEL = 0.9
SHOTS_PER_KEYWORD = 5

#: (label, spoken text). The label names the shot folder and the ``event_label`` column.
KEYWORDS: tuple[tuple[str, str], ...] = (
    ("weather", "weather"),
    ("computer", "computer"),
    ("banana", "banana"),
    ("good_morning", "good morning"),
)


#: Voice set A: speaks the enrolment shots (shot ``k`` is spoken by ``SHOT_VOICES[k - 1]``).
SHOT_VOICES: tuple[Voice, ...] = (
    Voice("flite-awb", "flite", "awb", 130.0),
    Voice("flite-rms", "flite", "rms"),
    Voice("flite-kal16", "flite", "kal16", 95.0),
    Voice("espeak-ng-en-us+m3", "espeak-ng", "en-us+m3"),
    Voice("espeak-ng-en-gb+f3", "espeak-ng", "en-gb+f3"),
)

#: Voice set B: speaks the long recording. Disjoint from set A (flite/festival kal and slt
#: are the same speakers, so set A holds kal and set B holds slt).
LONG_VOICES: tuple[Voice, ...] = (
    Voice("festival-cmu_us_slt_arctic_hts", "festival", "cmu_us_slt_arctic_hts"),
    Voice("festival-ked_diphone", "festival", "ked_diphone", 105.0),
    Voice("espeak-ng-en-gb-scotland+m2", "espeak-ng", "en-gb-scotland+m2"),
    Voice("espeak-ng-en-us+f4", "espeak-ng", "en-us+f4"),
)

#: Sentences with near-words of the keywords (hard negatives); all go into the long file.
#: "whether" is a homophone of "weather" for these voices: an acoustic detector cannot
#: tell them apart, which is deliberate.
CONFUSABLE_SENTENCES: tuple[str, ...] = (
    "I wonder whether the bus will be late again.",
    "She kept a small feather inside her leather notebook.",
    "Every commuter on the platform looked tired and cold.",
    "He tied a red bandana around his neck before the hike.",
    "We said good evening to the neighbours on our way out.",
    "The morning train was crowded, as usual.",
    "It was a good idea to leave a little earlier.",
    "They will compute the final totals after lunch.",
)

#: Ordinary sentences without keywords; a random subset goes into the long file.
FILLER_SENTENCES: tuple[str, ...] = (
    "Could you pass me the salt, please?",
    "The meeting has been moved to Thursday afternoon.",
    "My sister is learning to play the violin.",
    "We need to buy more milk and some fresh bread.",
    "The library closes at six on weekdays.",
    "He forgot his keys on the kitchen table again.",
    "Turn left at the second traffic light.",
    "The children built a castle out of old boxes.",
    "I think the printer on the third floor is broken.",
    "Let's take the long road home along the river.",
    "The soup needs a little more pepper.",
    "Our flight leaves early tomorrow, so pack tonight.",
    "Somebody left the garden gate open.",
    "The new bakery on the corner sells great pastries.",
    "Please remember to water the plants on Friday.",
    "That old clock in the hall has stopped.",
    "The concert starts at eight, but the doors open at seven.",
    "She painted the fence a bright shade of blue.",
    "I can't find the remote control anywhere.",
    "We walked along the beach until the sun went down.",
    "The cat is sleeping on the warm windowsill.",
    "Don't forget to send the invoice by the end of the week.",
)
N_FILLERS = 8

#: Carrier phrases (before, after) around a keyword; the three parts are synthesised
#: separately so that the keyword boundaries stay exact.
CARRIERS: tuple[tuple[str, str], ...] = (
    ("She said", "twice before leaving."),
    ("The next word on the list is", ""),
    ("I heard somebody say", "in the hallway."),
    ("", "was the answer to the last clue."),
    ("Please write down", "in your notebook."),
    ("My little brother keeps repeating", "all day long."),
    ("The sign on the door just said", "in big letters."),
    ("He typed", "into the search box."),
)
CARRIER_PROBABILITY = 0.6

GAP_RANGE_S = (0.03, 0.25)
NO_GAP_PROBABILITY = 0.2
TURN_PAUSE_RANGE_S = (0.3, 0.8)
EDGE_SILENCE_RANGE_S = (0.4, 0.8)
SHOT_SILENCE_RANGE_S = (0.1, 0.2)
SNR_RANGE_DB = (15.0, 20.0)
MIN_LONG_DURATION_S = 60.0


#: A phrase spoken in one go: (text, keyword label or None) pieces, synthesised separately.
Unit = list[tuple[str, str | None]]


@dataclass
class Chunk:
    """A trimmed piece of speech (or a silence, with empty ``text``), with its keyword label
    (``None`` for other speech) and the voice that spoke it."""

    audio: np.ndarray
    label: str | None
    text: str = ""
    voice: str = ""


@dataclass(frozen=True)
class Event:
    """A spoken chunk of the long recording, in samples (``label`` is None unless it is a
    keyword occurrence)."""

    label: str | None
    start: int
    end: int
    text: str
    voice: str


def check_texts() -> None:
    """Fail if a non-keyword text contains a keyword (or a word starting like one)."""
    texts = CONFUSABLE_SENTENCES + FILLER_SENTENCES + tuple(p for c in CARRIERS for p in c)
    for _, spoken in KEYWORDS:
        pattern = re.compile(rf"\b{re.escape(spoken)}", re.IGNORECASE)
        bad = [t for t in texts if pattern.search(t)]
        if bad:
            raise ValueError(f"keyword {spoken!r} occurs in non-keyword text: {bad}")


def random_style(rng: np.random.Generator, rate_spread: float, pitch_spread: float) -> Style:
    """Draw a speaking style around the engine defaults."""
    return Style(
        rate=float(rng.uniform(1 - rate_spread, 1 + rate_spread)),
        semitones=float(rng.uniform(-pitch_spread, pitch_spread)),
    )


def plan_units(rng: np.random.Generator) -> list[Unit]:
    """Plan the long recording as a shuffled list of units; each unit is a list of
    (text, keyword label or None) pieces spoken back to back by the same voice."""
    units: list[Unit] = []
    for label, spoken in KEYWORDS:
        for _ in range(int(rng.integers(5, 7))):
            if rng.random() < CARRIER_PROBABILITY:
                before, after = CARRIERS[rng.integers(len(CARRIERS))]
                pieces = [(before, None), (spoken, label), (after, None)]
                units.append([(text, lab) for text, lab in pieces if text])
            else:
                units.append([(spoken, label)])
    fillers = rng.choice(len(FILLER_SENTENCES), size=N_FILLERS, replace=False)
    sentences = list(CONFUSABLE_SENTENCES) + [FILLER_SENTENCES[i] for i in fillers]
    units += [[(sentence, None)] for sentence in sentences]
    order = rng.permutation(len(units))
    return [units[i] for i in order]


def gap(rng: np.random.Generator) -> np.ndarray:
    """Silence between two chunks: 30-250 ms, or none at all."""
    if rng.random() < NO_GAP_PROBABILITY:
        return np.zeros(0, dtype=np.float32)
    return silence(rng, GAP_RANGE_S)


def silence(rng: np.random.Generator, seconds: tuple[float, float]) -> np.ndarray:
    """Silence of a random length within ``seconds``."""
    return np.zeros(int(rng.uniform(*seconds) * SAMPLE_RATE), dtype=np.float32)


def speak_turns(units: list[Unit], rng: np.random.Generator, tmp_dir: Path) -> list[Chunk]:
    """Group the units into turns of 2-4 units, each turn by one voice of set B with its own
    rate, pitch and level, and return the chunks (silences included) in order."""
    chunks: list[Chunk] = [Chunk(silence(rng, EDGE_SILENCE_RANGE_S), None)]
    voice_index = int(rng.integers(len(LONG_VOICES)))
    position = 0
    while position < len(units):
        turn = units[position : position + int(rng.integers(2, 5))]
        position += len(turn)
        voice_index = (voice_index + int(rng.integers(1, len(LONG_VOICES)))) % len(LONG_VOICES)
        voice = LONG_VOICES[voice_index]
        style = random_style(rng, rate_spread=0.12, pitch_spread=2.0)
        gain_db = float(rng.uniform(-22, -18))
        pieces = [piece for unit in turn for piece in unit]
        for text, label in pieces:
            audio = speak(text, voice, style, tmp_dir, gain_db)
            chunks.append(Chunk(audio, label, text, voice.name))
            chunks.append(Chunk(gap(rng), None))
        chunks.append(Chunk(silence(rng, TURN_PAUSE_RANGE_S), None))
    chunks[-1] = Chunk(silence(rng, EDGE_SILENCE_RANGE_S), None)
    return chunks


def assemble(chunks: list[Chunk]) -> tuple[np.ndarray, list[Event], np.ndarray]:
    """Concatenate the chunks; return the speech, the spoken-chunk events (in order) and a
    speech-sample mask."""
    events: list[Event] = []
    start = 0
    for chunk in chunks:
        if chunk.text:
            end = start + len(chunk.audio)
            events.append(Event(chunk.label, start, end, chunk.text, chunk.voice))
        start += len(chunk.audio)
    speech = np.concatenate([c.audio for c in chunks])
    mask = np.concatenate([np.full(len(c.audio), bool(c.text)) for c in chunks])
    return speech, events, mask


def mix_noise(
    speech: np.ndarray,
    mask: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Add background noise at ``snr_db`` re. the RMS of the speech samples (``mask``) and
    normalise the peak. ``noise`` (unit RMS, same length) defaults to :func:`background_noise`."""
    speech_rms = np.sqrt(np.mean(speech[mask] ** 2))
    if noise is None:
        noise = background_noise(rng, len(speech))
    noise = noise * speech_rms / 10 ** (snr_db / 20)
    return normalise(speech + noise)


def normalise(audio: np.ndarray) -> np.ndarray:
    """Scale to a peak of :data:`PEAK_LEVEL`."""
    return (audio * (PEAK_LEVEL / np.max(np.abs(audio)))).astype(np.float32)


def make_shot(text: str, voice: Voice, rng: np.random.Generator, tmp_dir: Path) -> np.ndarray:
    """One enrolment shot: the trimmed word, 0.1-0.2 s of silence each side, and a very
    light pink-noise floor (about 50 dB below the speech)."""
    return make_shot_with_span(text, voice, rng, tmp_dir)[0]


def make_shot_with_span(
    text: str, voice: Voice, rng: np.random.Generator, tmp_dir: Path
) -> tuple[np.ndarray, int, int]:
    """:func:`make_shot`, also returning the word's first and end sample in the shot."""
    style = random_style(rng, rate_spread=0.06, pitch_spread=1.0)
    word = speak(text, voice, style, tmp_dir, gain_db=-20.0)
    before = silence(rng, SHOT_SILENCE_RANGE_S)
    padded = np.concatenate([before, word, silence(rng, SHOT_SILENCE_RANGE_S)])
    floor = colored_noise(rng, len(padded), 1.0) * 10 ** ((-20.0 - 50.0) / 20)
    return normalise(padded + floor), len(before), len(before) + len(word)


def write_shots(out_dir: Path, rng: np.random.Generator, tmp_dir: Path) -> list[Path]:
    """Write ``SHOTS_PER_KEYWORD`` shots per keyword; shot ``k`` uses ``SHOT_VOICES[k-1]``."""
    paths = []
    for label, spoken in KEYWORDS:
        folder = out_dir / "shots" / label
        folder.mkdir(parents=True, exist_ok=True)
        for k, voice in enumerate(SHOT_VOICES[:SHOTS_PER_KEYWORD], start=1):
            path = folder / f"{label}_{k}.wav"
            sf.write(path, make_shot(spoken, voice, rng, tmp_dir), SAMPLE_RATE, subtype="PCM_16")
            paths.append(path)
    return paths


def format_seconds(sample: int) -> str:
    """A sample index as seconds with 3 decimals."""
    return f"{sample / SAMPLE_RATE:.3f}"


def write_reference(path: Path, filename: str, keywords: list[Event]) -> None:
    """Write the keyword events as ``filename,onset,offset,event_label`` sorted by onset
    (labels with spaces, e.g. ``good morning``; folder names use ``_`` instead)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "onset", "offset", "event_label"])
        for event in sorted(keywords, key=lambda e: e.start):
            writer.writerow(
                [
                    filename,
                    format_seconds(event.start),
                    format_seconds(event.end),
                    event.label.replace("_", " "),
                ]
            )


def write_transcript(path: Path, events: list[Event]) -> None:
    """Write every spoken chunk as ``onset,offset,voice,text,event_label`` (empty label for
    other speech), so that false alarms on near-words can be traced."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["onset", "offset", "voice", "text", "event_label"])
        for e in events:
            writer.writerow(
                [format_seconds(e.start), format_seconds(e.end), e.voice, e.text, e.label or ""]
            )


def check_long(audio: np.ndarray, keywords: list[Event], mask: np.ndarray) -> list[str]:
    """Sanity checks on the long recording; return summary lines, raise on a failed check."""
    duration = len(audio) / SAMPLE_RATE
    ordered = sorted(keywords, key=lambda e: e.start)
    if duration < MIN_LONG_DURATION_S:
        raise AssertionError(f"long recording too short: {duration:.1f} s")
    if any(e.start < 0 or e.end > len(audio) or e.end <= e.start for e in ordered):
        raise AssertionError("a reference event lies outside the recording")
    if any(a.end > b.start for a, b in zip(ordered, ordered[1:], strict=False)):
        raise AssertionError("two reference events overlap")
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        raise AssertionError(f"long recording clips (peak {peak:.3f})")
    keyword_mask = np.zeros(len(audio), dtype=bool)
    for event in ordered:
        keyword_mask[event.start : event.end] = True
    kw_db = 20 * np.log10(np.sqrt(np.mean(audio[keyword_mask] ** 2)))
    gap_db = 20 * np.log10(np.sqrt(np.mean(audio[~mask] ** 2)))
    counts = {label: sum(e.label == label for e in ordered) for label, _ in KEYWORDS}
    return [
        f"{duration:.1f} s, peak {peak:.2f}, keyword RMS {kw_db:.1f} dBFS, "
        f"gap (noise-only) RMS {gap_db:.1f} dBFS",
        "occurrences: " + ", ".join(f"{label}={n}" for label, n in counts.items()),
    ]


def check_shots(paths: list[Path]) -> list[str]:
    """Sanity checks on the shots; return summary lines, raise on a failed check."""
    durations = []
    for path in paths:
        audio, rate = sf.read(path, dtype="float32")
        if rate != SAMPLE_RATE or audio.ndim != 1 or np.max(np.abs(audio)) > 0.99:
            raise AssertionError(f"bad shot {path}")
        durations.append(len(audio) / rate)
    return [
        f"shots: {len(paths)} files, {min(durations):.2f}-{max(durations):.2f} s each, "
        f"{len(KEYWORDS)} keywords x {SHOTS_PER_KEYWORD}"
    ]


def make_recording(out_dir: Path, name: str, rng: np.random.Generator, tmp_dir: Path) -> list[str]:
    """Synthesise one long recording ``<name>.flac`` with ``<name>.csv`` (reference) and
    ``<name>_transcript.csv``; return the summary lines."""
    chunks = speak_turns(plan_units(rng), rng, tmp_dir)
    speech, events, mask = assemble(chunks)
    keywords = [e for e in events if e.label is not None]
    snr_db = float(rng.uniform(*SNR_RANGE_DB))
    audio = mix_noise(speech, mask, snr_db, rng)
    summary = [f"{name}: " + line for line in check_long(audio, keywords, mask)]
    sf.write(out_dir / f"{name}.flac", audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    write_reference(out_dir / f"{name}.csv", f"{name}.flac", keywords)
    write_transcript(out_dir / f"{name}_transcript.csv", events)
    return summary + [f"{name}: SNR {snr_db:.1f} dB"]


def make_demo(out_dir: Path, seed: int = 0) -> None:
    """Generate the shots, a validation recording (for tuning the threshold) and the long test
    recording, each with its reference, under ``out_dir``."""
    check_engines("make_demo")
    check_texts()
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kwsos_demo_") as tmp:
        tmp_dir = Path(tmp)
        shot_paths = write_shots(out_dir, rng, tmp_dir)
        summary = check_shots(shot_paths)
        for name in ("long", "validation"):
            summary += make_recording(out_dir, name, rng, tmp_dir)
    print("\n".join(summary + [f"written to {out_dir}"]))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("kwsos/data/demo"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    make_demo(args.out, args.seed)


if __name__ == "__main__":
    main()
