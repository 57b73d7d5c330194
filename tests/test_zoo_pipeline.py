"""Each non-default encoder and loss through the real finetune -> evaluate -> export -> Recommender path
on the tiny synthetic dataset of test_end_to_end (3 epochs each, a few seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from tests.test_end_to_end import raw_item, write_data, write_spec

from seqrec_cli.artifacts import Recommender
from seqrec_cli.pipelines.evaluate import evaluate
from seqrec_cli.pipelines.export import export
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.spec.loader import load_spec

torch.set_num_threads(1)

CASES = [
    ("bert4rec", ["train.loss=full_ce", "model.mask_prob=0.3", "model.last_item_mask_prob=0.2"]),
    ("gru4rec", ["train.loss=gbce", "train.num_negatives=8"]),
    ("hstu", ["train.loss=sampled_softmax", "train.negatives=popularity", "train.num_negatives=8"]),
    ("hf_gpt2", ["train.loss=sampled_softmax", "train.negatives=in_batch", "train.num_negatives=16"]),
    ("hf_llama", ["train.loss=bce", "train.num_negatives=4"]),
    ("hf_bert", ["train.loss=full_ce", "train.label_smoothing=0.1"]),
    ("sasrec", ["train.loss=full_ce", "train.temperature=0.5"]),
]


@pytest.mark.parametrize("encoder,overrides", CASES, ids=[c[0] for c in CASES])
def test_encoder_and_loss_train_evaluate_export(tmp_path, encoder, overrides):
    spec_path = write_spec(tmp_path, write_data(tmp_path / "interactions.txt"))
    spec = load_spec(
        spec_path, [f"model.encoder={encoder}", "train.epochs=3", f"name=zoo-{encoder}", *overrides]
    )
    result = finetune(spec)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3
    assert records[-1]["loss"] < records[0]["loss"]  # it learns something on a trivially regular walk
    report = evaluate(spec, "test").report
    assert 0.0 <= report.metrics["NDCG@10"] <= report.metrics["HR@10"] <= 1.0
    folder = export(spec)
    rec = Recommender.load(folder)
    top = rec.recommend([raw_item(3), raw_item(4)], k=5)
    assert len(top) == 5 and raw_item(3) not in [i for i, _ in top]
