"""Non-neural baselines: fitted on training parts only, hand-checked scores, consistent block/item scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec_cli.core.baselines import BASELINES, ItemKNN, Markov, Popularity, RandomScores
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import leave_one_out
from seqrec_cli.spec.models import ModelSpec

N = 5
# leave-one-out training parts: [1, 2, 3], [2, 3], [1, 3]  (the last two items of each user are held out)
USERS = [[1, 2, 3, 4, 5], [2, 3, 5, 4], [1, 3, 4, 4]]


def seqs() -> Sequences:
    items = np.array([i for s in USERS for i in s], dtype=np.int32)
    offsets = np.zeros(len(USERS) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in USERS], out=offsets[1:])
    return Sequences(items=items, offsets=offsets, timestamps=None, user_ids=["a", "b", "c"],
                     item_ids=[""] + [str(i) for i in range(1, N + 1)])


def fitted(kind):
    s = seqs()
    return BASELINES[kind](BASELINES[kind].fit(s, leave_one_out(s).train_len, seed=7))


def test_registry_keys_are_the_spec_choices():
    kinds = set(ModelSpec.model_fields["kind"].annotation.__args__)
    assert set(BASELINES) == kinds - {"neural"}


def test_popularity_counts_training_parts_only():
    pop = fitted("popularity")
    assert pop.counts.tolist() == [0, 2, 2, 3, 0, 0]  # items 4 and 5 are only ever held out


def test_markov_transition_probabilities():
    markov = fitted("markov")
    # training transitions: 1->2, 2->3, 2->3, 1->3
    assert markov.prob[1, 2] == pytest.approx(0.5) and markov.prob[1, 3] == pytest.approx(0.5)
    assert markov.prob[2, 3] == pytest.approx(1.0)
    assert markov.prob[3].sum() == 0.0  # nothing follows 3 in training: popularity backoff only
    last = markov.begin(torch.tensor([[0, 1, 2], [0, 0, 3]]), np.array([0, 1]))
    scores = markov.block(last, 0, N + 1)  # [B, N + 1]
    assert (
        scores[0, 3] > scores[0, 1] > scores[0, 4]
    )  # 2 -> 3 certain; then backoff by popularity (item 1 > item 4)
    assert torch.argmax(scores[1, 1:]).item() + 1 == 3  # pure backoff: most popular


def test_itemknn_cosine_of_co_occurrence():
    knn = fitted("itemknn")
    # users holding items: 1: {a, c}, 2: {a, b}, 3: {a, b, c}
    assert knn.sim[1, 2] == pytest.approx(1 / 2)  # one shared user / sqrt(2 * 2)
    assert knn.sim[1, 3] == pytest.approx(2 / math.sqrt(2 * 3))
    assert knn.sim[2, 3] == pytest.approx(2 / math.sqrt(2 * 3))
    assert knn.sim[1, 1] == 0.0 and torch.equal(knn.sim, knn.sim.T)
    state = knn.begin(torch.tensor([[0, 1, 2]]), np.array([0]))
    scores = knn.block(state, 0, N + 1)[0]
    assert scores[3] == pytest.approx(knn.sim[1, 3] + knn.sim[2, 3] + knn.prior[3])


@pytest.mark.parametrize("kind", sorted(BASELINES))
def test_block_and_item_scores_agree_in_any_chunking(kind):
    model = fitted(kind)
    inputs = torch.tensor([[0, 1, 2], [3, 1, 2], [0, 0, 5]])  # [B=3, L=3]
    state = model.begin(inputs, np.array([0, 1, 2]))
    full = model.block(state, 0, N + 1)  # [3, N + 1]
    assert full.shape == (3, N + 1)
    pieces = torch.cat([model.block(state, lo, min(lo + 2, N + 1)) for lo in range(0, N + 1, 2)], dim=1)
    assert torch.equal(full, pieces)
    rows = torch.tensor([0, 1, 2, 2])
    items = torch.tensor([1, 5, 3, 4])
    assert torch.allclose(model.items(state, rows, items), full[rows, items])


def test_random_is_seeded_per_user_and_item():
    a, b = fitted("random"), RandomScores({"seed": torch.tensor(8), "num_items": torch.tensor(N)})
    users = np.array([0, 1])
    sa = a.block(a.begin(torch.zeros(2, 3, dtype=torch.long), users), 0, N + 1)
    assert torch.equal(sa, fitted("random").block(users_tensor := torch.tensor([0, 1]), 0, N + 1))
    assert not torch.equal(sa, b.block(users_tensor, 0, N + 1))
    assert not torch.equal(sa[0], sa[1])
    assert ((sa >= 0) & (sa < 1)).all()


def test_baseline_classes():
    assert BASELINES == {
        "popularity": Popularity,
        "itemknn": ItemKNN,
        "markov": Markov,
        "random": RandomScores,
    }
