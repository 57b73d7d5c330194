"""BERT4Rec's masked-item samples: what is masked, what the labels are, last-item-only samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.test_split import USERS, make_seqs

from seqrec_cli.core.objectives import make_train_batcher
from seqrec_cli.data.batching import IGNORE, PAD, TrainBatcher
from seqrec_cli.data.masked_batching import MASK, MaskedItemBatcher, mask_block
from seqrec_cli.spec.models import ModelSpec, TrainSpec

BLOCK = np.array([[PAD, PAD, 4, 6, 8], [1, 2, 3, 4, 5], [PAD, PAD, PAD, PAD, 9]])


def test_masked_inputs_and_labels_agree():
    rng = np.random.default_rng(0)
    for _ in range(50):
        inputs, labels = mask_block(BLOCK, rng, mask_prob=0.4, last_item_mask_prob=0.0)
        masked = inputs == MASK
        assert np.array_equal(labels[masked], BLOCK[masked])  # a masked slot's label is its item
        assert np.all(labels[~masked] == IGNORE)  # nothing else is labelled
        assert np.array_equal(inputs[~masked], BLOCK[~masked])  # unmasked items pass through
        assert not masked[BLOCK == PAD].any()  # padding is never masked
        assert masked.any(axis=1).all()  # every row with an item has at least one mask


def test_mask_rate_follows_mask_prob():
    big = np.random.default_rng(1).integers(1, 12, size=(400, 50))
    inputs, _ = mask_block(big, np.random.default_rng(2), mask_prob=0.2, last_item_mask_prob=0.0)
    assert (inputs == MASK).mean() == pytest.approx(0.2, abs=0.01)


def test_last_item_only_samples():
    inputs, labels = mask_block(BLOCK, np.random.default_rng(0), mask_prob=0.5, last_item_mask_prob=1.0)
    expected_inputs = BLOCK.copy()
    expected_inputs[:, -1] = MASK
    assert np.array_equal(inputs, expected_inputs)
    assert np.array_equal(labels[:, -1], BLOCK[:, -1]) and np.all(labels[:, :-1] == IGNORE)

    big = np.random.default_rng(1).integers(1, 12, size=(2000, 10))
    inputs, _ = mask_block(big, np.random.default_rng(3), mask_prob=0.3, last_item_mask_prob=0.25)
    last_only = ((inputs == MASK).sum(1) == 1) & (inputs[:, -1] == MASK)
    # 25% forced, plus random rows that happen to mask only the last item (0.3 * 0.7^9 ~ 1.2%)
    assert last_only.mean() == pytest.approx(0.25 + 0.75 * 0.3 * 0.7**9, abs=0.03)


def test_batcher_uses_training_part_only_and_is_deterministic():
    seqs = make_seqs()
    batcher = MaskedItemBatcher(seqs, max_len=4, batch_size=2, bucket_by_length=True, mask_prob=0.5,
                                last_item_mask_prob=0.0)
    seen_rows = set()
    batches = list(batcher.epoch(np.random.default_rng(7)))
    assert len(batches) == len(batcher) == 3  # all 6 users have >= 1 training item
    for batch in batches:
        inputs, labels = batch.inputs.numpy(), batch.labels.numpy()
        originals = np.where(inputs == MASK, labels, inputs)
        for row in originals:
            items = [int(i) for i in row if i != PAD]
            user = next(s for s in USERS if s[:-2][-4:] == items)  # the last <= 4 items of s[:-2]
            seen_rows.add(tuple(user))
    assert len(seen_rows) == len(USERS)
    again = list(batcher.epoch(np.random.default_rng(7)))
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
               for a, b in zip(batches, again, strict=True))


def test_batcher_chosen_by_encoder_objective():
    seqs = make_seqs()
    assert isinstance(make_train_batcher(ModelSpec(encoder="bert4rec", max_len=4), TrainSpec(), seqs),
                      MaskedItemBatcher)
    assert isinstance(make_train_batcher(ModelSpec(encoder="hf_bert", max_len=4), TrainSpec(), seqs),
                      MaskedItemBatcher)
    for kind in ("sasrec", "gru4rec", "hstu", "hf_gpt2", "hf_llama"):
        assert type(make_train_batcher(ModelSpec(encoder=kind, max_len=4), TrainSpec(), seqs)) is TrainBatcher
