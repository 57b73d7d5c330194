"""Scoring against the whole catalogue in column chunks, so no [B, N] score matrix is ever held.

Both functions see the same thing the unchunked path sees (scores = h @ item_weights.T, PAD never
a candidate) and give the same answers: pessimistic ranks (rank = 1 + number of other candidates
scoring >= the target; a non-finite target ranks after every finite candidate) and top-k.
Scores are fp32 whatever the autocast dtype: bf16 scores would create ties that pessimistic
ranking then counts against the target.
"""

from __future__ import annotations

import torch

from seqrec_cli.data.batching import PAD

SCORE_CHUNK = 65536  # catalogue columns per chunk: [B, 65536] fp32 = 64 MB at B = 256


def _mask_chunk(s: torch.Tensor, start: int, exclude_rows: torch.Tensor | None,
                exclude_items: torch.Tensor | None) -> torch.Tensor:
    """s [B, C] scores of items start..start+C-1 -> -inf at PAD and at excluded (row, item) pairs."""
    end = start + s.shape[1]
    if start == PAD:
        s[:, 0] = float("-inf")
    if exclude_rows is not None:
        inside = (exclude_items >= start) & (exclude_items < end)  # [S]
        s[exclude_rows[inside], exclude_items[inside] - start] = float("-inf")
    return s


@torch.no_grad()
def chunked_ranks(h: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor,
                  exclude_rows: torch.Tensor | None = None, exclude_items: torch.Tensor | None = None,
                  chunk: int | None = None) -> torch.Tensor:
    """h [B, D], weights [N + 1, D], targets [B], exclusions as (row, item) pairs [S] -> 1-based ranks [B].

    Same semantics as metrics.pessimistic_ranks; the target itself is never excluded.
    """
    chunk = chunk or SCORE_CHUNK
    h, weights = h.float(), weights.float()
    rows = torch.arange(len(targets), device=h.device)  # [B]
    target_rows = weights[targets]  # [B, D]
    beaten = torch.zeros(len(targets), dtype=torch.long, device=h.device)  # [B]
    finite = torch.zeros_like(beaten)  # [B]
    target_scores = None
    for start in range(0, weights.shape[0], chunk):
        end = min(start + chunk, weights.shape[0])
        # The targets ride along in the same matmul as the chunk, so a target's score is rounded
        # exactly like its competitors' (a separate product can differ in the last bit and turn a
        # tie, e.g. a collapsed model's, into a win).
        s = h @ torch.cat([weights[start:end], target_rows]).T  # [B, C + B]
        target_scores = s[rows, end - start + rows]  # [B]
        s = _mask_chunk(s[:, : end - start], start, exclude_rows, exclude_items)  # [B, C]
        own = (targets >= start) & (targets < end)  # [B]
        s[rows[own], targets[own] - start] = float("-inf")  # the target is not its own competitor
        beaten += (s >= target_scores.unsqueeze(1)).sum(dim=1)
        finite += torch.isfinite(s).sum(dim=1)
    bad_target = ~torch.isfinite(target_scores)  # [B]
    return torch.where(bad_target, finite, beaten) + 1


@torch.no_grad()
def chunked_topk(h: torch.Tensor, weights: torch.Tensor, k: int, exclude_rows: torch.Tensor | None = None,
                 exclude_items: torch.Tensor | None = None, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """h [B, D], weights [N + 1, D] -> (scores [B, k], items [B, k]) best first; k <= N.

    Keeps a running top-k and merges each chunk's own top-k into it. Excluded items score -inf
    (they can still appear when fewer than k candidates remain, with a -inf score).
    """
    chunk = chunk or SCORE_CHUNK
    h, weights = h.float(), weights.float()
    best_s = torch.full((h.shape[0], 0), float("-inf"), device=h.device)  # [B, 0]
    best_i = torch.zeros((h.shape[0], 0), dtype=torch.long, device=h.device)  # [B, 0]
    for start in range(0, weights.shape[0], chunk):
        end = min(start + chunk, weights.shape[0])
        s = _mask_chunk(h @ weights[start:end].T, start, exclude_rows, exclude_items)  # [B, C]
        if start == PAD:
            s = s[:, 1:]  # PAD is never a candidate, not even a -inf one
            offset = 1
        else:
            offset = start
        top_s, top_i = s.topk(min(k, s.shape[1]), dim=1)  # [B, k']
        merged_s = torch.cat([best_s, top_s], dim=1)  # [B, k + k']
        merged_i = torch.cat([best_i, top_i + offset], dim=1)  # [B, k + k']
        best_s, pick = merged_s.topk(min(k, merged_s.shape[1]), dim=1)  # [B, k]
        best_i = merged_i.gather(1, pick)  # [B, k]
    return best_s, best_i
