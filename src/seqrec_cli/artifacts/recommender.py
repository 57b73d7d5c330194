"""Load an export without the spec and recommend top-k raw item ids for raw item-id histories."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from seqrec_cli.artifacts.format import REEXPORT_FIX, verify_export
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.data.batching import PAD
from seqrec_cli.data.store import read_json_file
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import ModelSpec


class Recommender:
    """Usage:

        rec = Recommender.load("exports/ml100k-sasrec")
        rec.recommend(["50", "172", "133"], k=10)            # one history -> [(item_id, score), ...]
        rec.recommend([["50", "172"], ["1", "2"]], k=5)        # many histories -> one list each
    """

    def __init__(
        self, model: SeqRecModel, item_ids: list[str], max_len: int, manifest: dict, device: str = "cpu"
    ):
        self.model = model.eval().to(device)
        self.item_ids = item_ids
        self.index = {raw: i for i, raw in enumerate(item_ids) if i != PAD}
        self.max_len = max_len
        self.manifest = manifest
        self.device = torch.device(device)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> Recommender:
        return cls.from_verified(Path(folder), verify_export(Path(folder)), device)

    @classmethod
    def from_verified(cls, folder: Path, manifest: dict, device: str = "cpu") -> Recommender:
        """Build from a folder whose files `verify_export` has just checked (returned `manifest`)."""
        config = read_json_file(folder / "config.json", "the export's config", REEXPORT_FIX)
        item_ids = read_json_file(folder / "item_ids.json", "the export's item id list", REEXPORT_FIX)
        text_path = folder / "item_text.safetensors"
        try:  # the files match the manifest, so a failure here means a manifest rewritten to match them
            listed = "item_text.safetensors" in manifest["files"]
            vectors = load_file(str(text_path))["vectors"] if listed else None  # [N + 1, E]
            model = SeqRecModel(ModelSpec(**config["model"]), config["num_items"], vectors)
            model.load_state_dict(load_file(str(folder / "model.safetensors")))
            if config.get("unrankable_items"):  # an id table's held-out (cold) items: never recommended
                model.hold_out_items(torch.tensor(config["unrankable_items"], dtype=torch.long))
            max_len = int(config["model"]["max_len"])
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise UserError(f"the export's files do not make a model ({type(exc).__name__}: {exc})",
                            where=str(folder), fix=REEXPORT_FIX) from exc
        if not isinstance(item_ids, list) or len(item_ids) != config["num_items"] + 1:
            raise UserError("item_ids.json does not hold one id per item",
                            where=str(folder / "item_ids.json"), fix=REEXPORT_FIX)
        return cls(model, [str(i) for i in item_ids], max_len, manifest, device)

    def unknown_ids(self, history: list[str]) -> list[str]:
        """The ids of `history` this model's catalogue does not hold (they are left out when scoring)."""
        return [h for h in map(str, history) if h not in self.index]

    def encode_histories(self, histories: list[list[str]],
                         times: list[list[float]] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw ids (and their timestamps) -> [B, max_len] left-padded item indices (and [B, max_len]
        times, or None); unknown ids are dropped."""
        if times is not None and [len(t) for t in times] != [len(h) for h in histories]:
            raise ValueError("times must hold one timestamp per history item")
        batch = torch.full((len(histories), self.max_len), PAD, dtype=torch.long)  # [B, L]
        stamps = (
            None if times is None else torch.zeros(len(histories), self.max_len, dtype=torch.float64)
        )  # [B, L]
        for row, history in enumerate(histories):
            keep = [i for i, h in enumerate(map(str, history)) if h in self.index][-self.max_len :]
            if not keep:
                raise ValueError(f"history {row} has no item known to this model's catalogue")
            batch[row, self.max_len - len(keep) :] = torch.tensor([self.index[str(history[i])] for i in keep])
            if stamps is not None:
                stamps[row, self.max_len - len(keep) :] = torch.tensor([float(times[row][i]) for i in keep])
        return batch, stamps

    @torch.no_grad()
    def scores(self, histories: list[list[str]], exclude_history: bool = True,
               times: list[list[float]] | None = None) -> torch.Tensor:
        """[B, N + 1] scores; PAD and (optionally) every item of the history are -inf. `times`: the
        items' timestamps (seconds), for a time-aware model (HSTU); without them it scores from
        order alone."""
        inputs, stamps = self.encode_histories(histories, times)  # [B, L], [B, L] or None
        stamps = None if stamps is None else stamps.to(self.device)
        scores = self.model.score_all(inputs.to(self.device), stamps).cpu()  # [B, N + 1]
        if exclude_history:
            for row, history in enumerate(histories):
                seen = [self.index[h] for h in map(str, history) if h in self.index]
                scores[row, seen] = float("-inf")
        return scores

    def recommend(self, histories, k: int = 10, exclude_history: bool = True, times=None):
        single = bool(histories) and not isinstance(histories[0], (list, tuple))
        batch = [list(histories)] if single else [list(h) for h in histories]
        stamps = None if times is None else ([list(times)] if single else [list(t) for t in times])
        scores = self.scores(batch, exclude_history, stamps)  # [B, N + 1]
        top = torch.topk(
            scores, min(k, len(self.item_ids) - 1), dim=1
        )  # stable order for equal scores is not promised
        out = [
            [
                (self.item_ids[i], float(s))
                for i, s in zip(idx.tolist(), val.tolist(), strict=True)
                if s != float("-inf")
            ]
            for idx, val in zip(top.indices, top.values, strict=True)
        ]
        return out[0] if single else out
