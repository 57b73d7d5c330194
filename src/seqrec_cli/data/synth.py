"""A seeded synthetic interaction log that looks like production data, written as partitioned Parquet.

Shape of the data (all vectorised numpy, one chunk of users at a time, so memory stays bounded):
- user activity is log-normal (clipped to [min_len, max_len]); users are drawn until the log holds
  exactly `interactions` rows (the last user is cut);
- item popularity is a power law (Zipf, exponent `alpha`) over a random permutation of the catalogue;
- sequential structure a model can learn: items live in clusters (contiguous internal ranges); each
  step either jumps to a popular item anywhere (p_jump), jumps inside the current cluster (p_cluster),
  or moves to one of the next few items of a ring inside the cluster (the rest). The ring walk is
  what a sequence model learns and what most-popular cannot know;
- timestamps: a start time per user plus exponential gaps, whole seconds, with some exact ties
  (so the stable tie-break by row order matters); each partition is sorted by time, like a real log;
- ratings 1..5 (so data.min_rating has something to drop) and a text table per item whose words
  depend on the item's cluster.

Layout: <out>/interactions/part-00000.parquet ... (user_id, item_id int64, timestamp int64, rating int8)
and <out>/items.parquet (item_id, title, genres). The same seed and sizes always give the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seqrec_cli.errors import UserError

WORDS = ("red blue green amber silver quiet loud fast slow deep bright dark wild calm urban rural "
         "classic modern epic tiny grand vivid soft sharp lunar solar ocean forest desert arctic").split()
T0 = 1_600_000_000  # 2020-09-13, seconds


@dataclass(frozen=True)
class SynthConfig:
    interactions: int
    items: int
    seed: int = 0
    mean_len: float = 50.0  # mean of the log-normal user activity before clipping
    sigma: float = 1.0
    min_len: int = 5
    max_len: int = 2000
    alpha: float = 1.0  # Zipf exponent of item popularity
    cluster_size: int = 50
    p_jump: float = 0.1  # next item: a popular item anywhere
    p_cluster: float = 0.2  # next item: a popular-ish item of the current cluster
    users_per_chunk: int = 20_000  # one partition per chunk (about users_per_chunk * mean_len rows)
    tie_share: float = 0.05  # share of zero gaps (same-second events)


@dataclass(frozen=True)
class Catalogue:
    """Internal item index 0..N-1 -> raw id, cluster ranges and the global popularity sampler."""

    raw_ids: np.ndarray  # [N] int64
    cluster_start: np.ndarray  # [N] int64: first internal index of the item's cluster
    cluster_len: np.ndarray  # [N] int64
    pop_order: np.ndarray  # [N] internal index of popularity rank r
    pop_cdf: np.ndarray  # [N] cumulative Zipf weights


def make_catalogue(cfg: SynthConfig) -> Catalogue:
    rng = np.random.default_rng([cfg.seed, 0])
    n = cfg.items
    idx = np.arange(n, dtype=np.int64)
    start = (idx // cfg.cluster_size) * cfg.cluster_size
    length = np.minimum(cfg.cluster_size, n - start)
    weights = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), cfg.alpha)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    raw = rng.permutation(n).astype(np.int64) * 7 + 1000  # sparse, shuffled raw ids
    return Catalogue(raw, start, length, rng.permutation(n).astype(np.int64), cdf)


def user_lengths(cfg: SynthConfig, rng: np.random.Generator, count: int) -> np.ndarray:
    mu = math.log(cfg.mean_len) - cfg.sigma**2 / 2
    raw = np.exp(rng.normal(mu, cfg.sigma, size=count))
    return np.clip(np.rint(raw), cfg.min_len, cfg.max_len).astype(np.int64)


def walk(cat: Catalogue, cfg: SynthConfig, rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """[sum(lengths)] internal item indices of each user's walk, users one after another."""
    total = int(lengths.sum())
    first = np.zeros(total, dtype=bool)
    first[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    u = rng.random(total)
    jump = first | (u < cfg.p_jump)
    anchor_c = ~jump & (u < cfg.p_jump + cfg.p_cluster)
    pos = np.arange(total, dtype=np.int64)
    # The cluster only changes at a global jump: forward-fill the jump's item.
    jumped = cat.pop_order[
        np.searchsorted(cat.pop_cdf, rng.random(total), side="right").clip(0, cfg.items - 1)
    ]
    last_jump = np.maximum.accumulate(np.where(jump, pos, 0))
    base = jumped[last_jump]
    c_start, c_len = cat.cluster_start[base], cat.cluster_len[base]
    # Local index inside the cluster: reset at every anchor (jump or in-cluster draw), then a ring walk.
    anchor = jump | anchor_c
    in_cluster = np.floor(c_len * rng.random(total) ** 3).astype(np.int64)  # skewed to the cluster head
    anchor_local = np.where(jump, base - c_start, in_cluster)
    step = rng.choice(np.array([1, 2, 3]), size=total, p=[0.6, 0.3, 0.1])
    step[anchor] = 0
    walked = np.cumsum(step)
    last_anchor = np.maximum.accumulate(np.where(anchor, pos, 0))
    local = (anchor_local[last_anchor] + walked - walked[last_anchor]) % c_len
    return c_start + local


def chunk_table(cat: Catalogue, cfg: SynthConfig, chunk: int, first_user: int, lengths: np.ndarray):
    import pyarrow as pa

    rng = np.random.default_rng([cfg.seed, 1, chunk])
    items = walk(cat, cfg, rng, lengths)
    users = np.repeat(np.arange(first_user, first_user + len(lengths), dtype=np.int64) + 1, lengths)
    gaps = rng.exponential(6 * 3600.0, size=len(items)).astype(np.int64)
    gaps[rng.random(len(items)) < cfg.tie_share] = 0
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps[starts] = rng.integers(0, 365 * 86400, size=len(lengths))  # each user's first event
    run = np.cumsum(gaps)
    times = T0 + run - np.repeat(run[starts] - gaps[starts], lengths)
    ratings = rng.choice(np.arange(1, 6, dtype=np.int8), size=len(items), p=[0.05, 0.1, 0.2, 0.35, 0.3])
    order = np.argsort(times, kind="stable")  # a log is written in time order
    return pa.table({
        "user_id": users[order], "item_id": cat.raw_ids[items[order]],
        "timestamp": times[order], "rating": ratings[order],
    })


def item_table(cat: Catalogue, cfg: SynthConfig):
    import pyarrow as pa

    n = cfg.items
    rng = np.random.default_rng([cfg.seed, 2])
    cluster = np.arange(n) // cfg.cluster_size
    w1 = np.asarray(WORDS)[cluster % len(WORDS)]
    w2 = np.asarray(WORDS)[(cluster // len(WORDS)) % len(WORDS)]
    w3 = np.asarray(WORDS)[rng.integers(0, len(WORDS), size=n)]
    titles = [
        f"{a} {b} {c} {i}" for a, b, c, i in zip(w1.tolist(), w2.tolist(), w3.tolist(), range(n), strict=True)
    ]
    genres = [f"g{c % 97}|g{(c * 31) % 97}" for c in cluster.tolist()]
    return pa.table({"item_id": cat.raw_ids, "title": titles, "genres": genres})


def generate(cfg: SynthConfig, out: Path, on_part=lambda index, rows: None) -> dict:
    """Write the log under `out` (which must not exist); returns the summary also saved as synth.json."""
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists():
        raise UserError("output folder already exists; refusing to overwrite it", where=str(out),
                        fix="pick a new --out folder, or delete the old one")
    if cfg.items < cfg.cluster_size or cfg.interactions < cfg.min_len:
        raise UserError("too small: need items >= cluster size and interactions >= min_len", where="synth",
                        fix=f"use --items >= {cfg.cluster_size} and --interactions >= {cfg.min_len}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "interactions").mkdir()
        cat = make_catalogue(cfg)
        written, users, chunk = 0, 0, 0
        while written < cfg.interactions:
            lengths = user_lengths(cfg, np.random.default_rng([cfg.seed, 3, chunk]), cfg.users_per_chunk)
            cum = np.cumsum(lengths)
            need = cfg.interactions - written
            if cum[-1] >= need:  # the last chunk: cut the user that crosses the total
                cut = int(np.searchsorted(cum, need))
                lengths = lengths[: cut + 1].copy()
                lengths[-1] = need - (int(cum[cut - 1]) if cut else 0)
            table = chunk_table(cat, cfg, chunk, users, lengths)
            pq.write_table(table, tmp / "interactions" / f"part-{chunk:05d}.parquet", row_group_size=1 << 20)
            written += table.num_rows
            users += len(lengths)
            on_part(chunk, table.num_rows)
            chunk += 1
        pq.write_table(item_table(cat, cfg), tmp / "items.parquet")
        summary = {**asdict(cfg), "users": users, "partitions": chunk, "rows": written}
        (tmp / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary
