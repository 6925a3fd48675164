"""Pretrain the whisper-tacos head on a generated word corpus (issue #19, route 2).

    python recipes/kws_pretrain/local/pretrain_whisper_head.py --data data/kws_words \
        --exp exp/kws_pretrain --steps 12000

1. Every utterance of the corpus (``data_prep.make_kws_words``: ``words.csv`` with the word
   times) is encoded once by the Whisper encoder (padded to ``--pad-s`` like enrollment shots);
   the frames are cached in ``<exp>/frames_<split>.npz``.
2. Every word token of the ``train`` split (voices disjoint from ``val``), except those of
   ``--held-out-words`` words kept for validation, becomes TACos training
   segments exactly as an enrollment shot does (:func:`kwsos.embeddings.whisper.train_whisper_head`:
   segments of 12 encoder frames, hop 2, relative-position targets), one class per word; a
   time-reversed class per word is left out (it would double thousands of classes).
3. The head is trained with the TACos loss (one centre per word x position) and
   **validated on unseen words spoken by unseen voices**: for every held-out word, a token
   from a training voice is searched by DTW in its token from a val voice and in those of 3
   other held-out words; ``same_word_auc`` is the AUC that the same word matches better, for
   the raw encoder frames and for the head after every ``--eval-every`` steps. The best head goes to ``<exp>/whisper_head.pt`` with ``whisper_head.json``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("pretrain")

FPS = 50  # encoder frames per second


def read_words(data: Path) -> list[dict[str, str]]:
    need = {"file", "word", "onset", "offset", "split"}
    try:
        with open(data / "words.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise SystemExit(f"error: no word corpus at {data} ({exc.strerror}); run stage 0") from None
    missing = need - set(rows[0] if rows else ())
    if missing:
        raise SystemExit(
            f"error: {data / 'words.csv'}: missing column(s) {', '.join(sorted(missing))}"
        )
    return rows


def encode_split(data: Path, rows: list[dict[str, str]], split: str, cache: Path, pad_s: float):
    """``{file: frames}`` for every utterance of ``split`` (cached)."""
    from kwsos.audio import load_audio
    from kwsos.features import get_extractor

    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    ex = get_extractor("whisper", shot_pad_s=pad_s, block_s=min(10.0, pad_s) if pad_s else 10.0)
    files = sorted({r["file"] for r in rows if r["split"] == split})
    out = {}
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        out[f] = ex.shot_features(load_audio(data / f))
        if i % 500 == 0:
            log.info(
                "  encoded %d/%d %s utterances (%.0f s)",
                i,
                len(files),
                split,
                time.perf_counter() - t0,
            )
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(cache)
    return out


def tokens(rows, frames, split):
    """``[(word, frames of the token)]`` of ``split``."""
    out = []
    for r in rows:
        if r["split"] != split or r["file"] not in frames:
            continue
        f = frames[r["file"]]
        a = int(np.floor(float(r["onset"]) * FPS))
        b = int(np.ceil(float(r["offset"]) * FPS))
        if b - a >= 4 and b <= len(f) + 1:
            out.append((r["word"], f[a : min(b, len(f))]))
    return out


def same_word_auc(queries, targets, embed, rng) -> float:
    """AUC that DTW(query, target of the same word) < DTW(query, target of another word).

    ``queries`` and ``targets`` map word -> token frames; queries come from training voices,
    targets from the held-out val voices, and the words are held out of training: unseen words
    spoken by unseen voices, like a user's keywords in other people's speech."""
    from kwsos.backends.dtw import cosine_cost, subsequence_dtw
    from kwsos.metrics import roc_auc

    words = sorted(set(queries) & set(targets))
    emb = {}

    def e(kind, w):
        if (kind, w) not in emb:
            emb[(kind, w)] = embed((queries if kind == "q" else targets)[w])
        return emb[(kind, w)]

    same, diff = [], []
    for w in words:
        q = e("q", w)
        same.append(float(subsequence_dtw(cosine_cost(q, e("t", w)))[0].min()))
        others = [v for v in words if v != w]
        for other in rng.choice(others, min(3, len(others)), replace=False):
            diff.append(float(subsequence_dtw(cosine_cost(q, e("t", str(other))))[0].min()))
    y = np.r_[np.ones(len(same)), np.zeros(len(diff))]
    cost = np.minimum(np.r_[same, diff], 2.0)  # inf: no path (target too short): the worst cost
    return float(roc_auc(y, -cost))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--exp", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--eval-every", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--pad-s", type=float, default=10.0)
    ap.add_argument("--segment-frames", type=int, default=12)
    ap.add_argument("--hop-frames", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out-words", type=int, default=200)
    ap.add_argument("--init", type=Path, default=None, help="continue from this head (.pt)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from kwsos.augment import spec_augment
    from kwsos.features.segments import training_segments
    from kwsos.io import atomic_output, write_json_atomic
    from kwsos.losses import TACos, position_labels
    from kwsos.models.whisper_head import WhisperHead
    from kwsos.training import TrainConfig, seed_everything, train

    torch.set_num_threads(args.threads)
    rows = read_words(args.data)  # bad data: one line, nothing created
    args.exp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    frames = {
        s: encode_split(args.data, rows, s, args.exp / f"frames_{s}.npz", args.pad_s)
        for s in ("train", "val")
    }
    encode_s = time.perf_counter() - t0
    train_toks, val_toks = (
        tokens(rows, frames["train"], "train"),
        tokens(rows, frames["val"], "val"),
    )
    # words held out of training: validation = unseen words x unseen voices
    vocab = sorted({w for w, _ in train_toks} & {w for w, _ in val_toks})
    held = set(np.random.default_rng(args.seed).choice(vocab, args.held_out_words, replace=False))
    queries: dict[str, np.ndarray] = {}
    for w, f in train_toks:
        if w in held:
            queries.setdefault(w, f)
    targets = {w: f for w, f in val_toks if w in held}
    train_toks = [(w, f) for w, f in train_toks if w not in held]
    log.info(
        "tokens: %d train, %d val; %d words held out; encoding %.0f s",
        len(train_toks),
        len(val_toks),
        len(held),
        encode_s,
    )

    S, hop = args.segment_frames, args.hop_frames
    segs = [
        training_segments(f, segment_frames=S, hop_frames=hop, pad_value=0.0) for _, f in train_toks
    ]
    n_pos = int(np.percentile([len(s) for s in segs], 95))
    words = sorted({w for w, _ in train_toks})
    col = {w: i for i, w in enumerate(words)}
    xs, ids, poss = [], [], []
    for (w, _), s in zip(train_toks, segs, strict=True):
        s = s[:n_pos]
        xs.append(s)
        ids.append(np.full(len(s), col[w]))
        poss.append(position_labels(len(s), n_pos))
    x = np.ascontiguousarray(np.concatenate(xs), np.float32)
    class_ids = np.concatenate(ids)
    lab_kw = np.zeros((len(x), len(words)), np.float32)
    lab_kw[np.arange(len(x)), class_ids] = 1.0
    lab_pos = np.concatenate(poss).astype(np.float32)
    log.info("%d segments, %d words x %d positions", len(x), len(words), n_pos)

    seed_everything(args.seed)
    head = WhisperHead(in_dim=x.shape[2], dim=args.dim)
    if args.init is not None:  # continue a pretraining (the TACos centres start fresh)
        head.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
    loss = TACos(len(words), n_pos, dim=args.dim, n_centers=1)

    def embed_with(net):
        def f(frames):
            with torch.inference_mode():
                return net(torch.from_numpy(np.ascontiguousarray(frames))[None])[0].numpy()

        return f

    def auc_of(embed):
        return same_word_auc(queries, targets, embed, np.random.default_rng(1))

    history = [
        {
            "step": 0,
            "raw_encoder_auc": auc_of(lambda f: f),
        }
    ]
    log.info("val same-word AUC, raw encoder frames: %.4f", history[0]["raw_encoder_auc"])
    best = (-1.0, None, 0)

    def augment(xb, g):
        return spec_augment(xb, g, freq_masks=2, freq_width=48, time_masks=1, time_width=2)

    done = 0
    t0 = time.perf_counter()
    while done < args.steps:
        n = min(args.eval_every, args.steps - done)
        cfg = TrainConfig(
            epochs=10_000,
            max_steps=n,
            batch_size=args.batch,
            max_minutes=None,
            seed=args.seed + done,
            precision="fp32",
            threads=args.threads,
        )
        head.train()
        tlog = train(head, loss, x, (lab_kw, lab_pos), class_ids, cfg, augment=augment)
        done += n
        head.eval()
        auc = auc_of(embed_with(head))
        history.append(
            {
                "step": done,
                "auc": auc,
                "loss": tlog.losses[-1] if tlog.losses else None,
                "s": round(time.perf_counter() - t0),
            }
        )
        log.info(
            "step %d: loss %.3f, val same-word AUC %.4f (%.0f s)",
            done,
            history[-1]["loss"] or 0,
            auc,
            time.perf_counter() - t0,
        )
        if auc > best[0]:
            best = (auc, {k: v.detach().clone() for k, v in head.state_dict().items()}, done)
    with atomic_output(args.exp / "whisper_head.pt") as tmp:
        torch.save(best[1], tmp)
    meta = {
        "arch": head.to_dict(),
        "segment_frames": S,
        "hop_frames": hop,
        "n_positions": n_pos,
        "n_words": len(words),
        "n_train_tokens": len(train_toks),
        "n_val_tokens": len(val_toks),
        "held_out_words": sorted(str(w) for w in held),
        "best_step": best[2],
        "best_val_auc": best[0],
        "history": history,
        "data": str(args.data),
        "encode_s": round(encode_s),
        "train_s": round(time.perf_counter() - t0),
    }
    write_json_atomic(args.exp / "whisper_head.json", meta)
    log.info("best val AUC %.4f at step %d -> %s", best[0], best[2], args.exp / "whisper_head.pt")


if __name__ == "__main__":
    main()
