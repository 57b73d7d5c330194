"""model.repeat_bias: offsets for the items in the input window, hand-computed; causal and the same in
training and scoring; the loss with offsets against a brute-force one; a new model scores as without
it; it learns a negative offset where nobody repeats; spec and export refuse what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.core.evaluation import ModelScorer
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.optim import make_optimizer
from seqrec_cli.core.repeat import RepeatBias, WindowOffsets
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.core.train import EarlyStopping, LoopConfig, TrainHooks, TrainParts, train_loop
from seqrec_cli.data.batching import IGNORE, PAD, TrainBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.spec.models import MASKED_ENCODERS, ExperimentSpec, ModelSpec

torch.set_num_threads(1)
CPU = Runtime(device=torch.device("cpu"), dtype=None)


def randomised(bias: RepeatBias, seed: int = 0) -> RepeatBias:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bias.by_distance.copy_(torch.randn(bias.by_distance.shape, generator=g))
        bias.gate.weight.copy_(torch.randn(bias.gate.weight.shape, generator=g))
        bias.gate.bias.fill_(0.3)
    return bias


def test_offsets_hand_computed():
    # window 2, 3, 2 (+ an invalid entry): item 2 twice (recency 0.5 + 0.25), item 3 once (-1); gate 0.1 each
    offsets = WindowOffsets(items=torch.tensor([[2, 3, 2, 4]]),
                            recency=torch.tensor([[0.5, -1.0, 0.25, 9.0]]),
                            gate=torch.tensor([0.1]), valid=torch.tensor([[True, True, True, False]]))
    assert offsets.add_to(torch.zeros(1, 5))[0].tolist() == pytest.approx([0.0, 0.0, 0.85, -0.9, 0.0])
    assert offsets.add_to(torch.ones(1, 2), lo=2)[0].tolist() == pytest.approx([1.85, 0.1])  # items 2 and 3
    assert offsets.add_to(torch.zeros(1, 2), lo=3)[0].tolist() == pytest.approx([-0.9, 0.0])  # items 3 and 4
    totals = offsets.totals()  # evaluation's form: each item's whole offset, placed once
    assert totals.place(torch.zeros(1, 5))[0].tolist() == pytest.approx([0.0, 0.0, 0.85, -0.9, 0.0])
    assert totals.place(torch.ones(1, 2), lo=2)[0].tolist() == pytest.approx([1.85, 0.1])
    items = torch.tensor([2, 4, 3])
    assert totals.of_items(torch.zeros(3), torch.tensor([0, 0, 0]), items).tolist() == \
        pytest.approx([0.85, 0.0, -0.9])


def test_last_position_offsets_hand_computed():
    bias = RepeatBias(max_len=4, hidden=2)
    with torch.no_grad():
        bias.by_distance.copy_(torch.tensor([-1.0, -0.5, -0.25, 0.0]))  # 0 = the most recent item
        bias.gate.weight.copy_(torch.tensor([[1.0, 0.0]]))
    inputs = torch.tensor([[PAD, 5, 7, 5]])  # item 5 at distances 2 and 0, item 7 at distance 1
    offsets = bias.last_position(inputs, torch.tensor([[0.2, 9.0]]))
    scores = offsets.add_to(torch.zeros(1, 8))[0]
    assert scores[5].item() == pytest.approx(-0.25 - 1.0 + 0.2)
    assert scores[7].item() == pytest.approx(-0.5 + 0.2)
    assert scores[PAD].item() == 0.0 and scores[6].item() == 0.0


def test_every_position_is_causal_and_equals_the_last_position_of_each_prefix():
    bias = randomised(RepeatBias(max_len=6, hidden=4))
    inputs = torch.tensor([[PAD, PAD, 3, 1, 3, 2], [4, 1, 1, 5, 2, 4]])
    hidden = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))
    every = bias.every_position(inputs, hidden).add_to(torch.zeros(12, 7)).view(2, 6, 7)
    for t in range(6):
        prefix = bias.last_position(inputs[:, : t + 1], hidden[:, t]).add_to(torch.zeros(2, 7))
        assert torch.allclose(every[:, t], prefix, atol=1e-6), t
    changed = inputs.clone()
    changed[:, 4:] = 6  # later items never reach earlier states
    again = bias.every_position(changed, hidden).add_to(torch.zeros(12, 7)).view(2, 6, 7)
    assert torch.equal(again[:, :4], every[:, :4])


def test_loss_with_offsets_matches_brute_force_and_trains_the_offsets():
    torch.manual_seed(0)
    n, d = 6, 4
    bias = randomised(RepeatBias(max_len=5, hidden=d))
    inputs = torch.tensor([[PAD, 2, 4, 2, 1], [3, 5, 6, 1, 2]])
    labels = torch.tensor([[IGNORE, 4, 2, 1, 6], [5, IGNORE, 1, 2, 3]])
    hidden = torch.randn(2, 5, d)
    table = torch.randn(n + 1, d)
    loss = full_cross_entropy(hidden, labels, table, offsets=bias.every_position(inputs, hidden))
    total, count = 0.0, 0
    for b in range(2):
        for t in range(5):
            if labels[b, t] == IGNORE:
                continue
            logits = hidden[b, t] @ table.T
            window = [(s, int(inputs[b, s])) for s in range(t + 1) if inputs[b, s] != PAD]
            for s, item in window:
                logits[item] += bias.by_distance[t - s]
            for item in {item for _, item in window}:
                logits[item] += bias.gate(hidden[b, t]).squeeze()
            total += -torch.log_softmax(logits[1:], 0)[labels[b, t] - 1]
            count += 1
    assert loss.item() == pytest.approx((total / count).item(), rel=1e-5)
    loss.backward()
    assert bias.by_distance.grad.abs().sum() > 0 and bias.gate.weight.grad.abs().sum() > 0


def tiny_model(repeat: bool, seed: int = 0, items: int = 12, max_len: int = 5) -> SeqRecModel:
    torch.manual_seed(seed)
    spec = ModelSpec(hidden=8, layers=1, heads=1, max_len=max_len, dropout=0.0, repeat_bias=repeat)
    return SeqRecModel(spec, num_items=items)


def test_a_new_model_scores_as_without_the_offsets_and_the_scorer_matches_score_all():
    plain, with_bias = tiny_model(False), tiny_model(True)
    missing = with_bias.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["repeat.by_distance", "repeat.gate.bias", "repeat.gate.weight"]
    inputs = torch.tensor([[PAD, 3, 7, 3, 1], [2, 4, 6, 8, 10]])
    plain.eval(), with_bias.eval()
    with torch.no_grad():
        assert torch.equal(plain.score_all(inputs), with_bias.score_all(inputs))
        randomised(with_bias.repeat)
        full = with_bias.score_all(inputs)  # [2, N + 1]
        assert not torch.equal(full, plain.score_all(inputs))
        scorer = ModelScorer(with_bias, CPU)
        state = scorer.begin(inputs, np.arange(2))
        blocks = torch.cat([scorer.block(state, lo, min(lo + 5, 13)) for lo in range(0, 13, 5)], dim=1)
        assert torch.allclose(blocks[:, 1:], full[:, 1:], atol=1e-5)
        rows, items = torch.tensor([0, 0, 1, 1]), torch.tensor([3, 5, 10, 11])
        assert torch.allclose(scorer.items(state, rows, items), blocks[rows, items], atol=1e-5)


def test_a_target_scores_the_same_float_inside_a_block_and_on_its_own():
    model = tiny_model(True).eval()
    with torch.no_grad():
        randomised(model.repeat)
        inputs = torch.tensor([[3, 7, 3, 3, 1], [2, 2, 2, 2, 2]])  # items read three and five times
        scorer = ModelScorer(model, CPU)
        state = scorer.begin(inputs, np.arange(2))
        rows, items = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([3, 7, 9, 2, 4])
        for lo, hi in ((0, 13), (2, 5), (3, 11)):
            block = scorer.block(state, lo, hi)
            inside = (items >= lo) & (items < hi)
            assert torch.equal(scorer.items(state, rows[inside], items[inside]),
                               block[rows[inside], items[inside] - lo])


def test_weights_of_a_model_without_the_offset_load_with_it_at_zero():
    from seqrec_cli.pipelines.transfer import _load

    plain, with_bias = tiny_model(False), tiny_model(True)
    randomised(with_bias.repeat)
    _load(with_bias, plain.state_dict(), "source")
    assert with_bias.repeat.by_distance.abs().sum() == 0 and with_bias.repeat.gate.weight.abs().sum() == 0
    assert torch.equal(with_bias.item_emb.weight, plain.item_emb.weight)


def permutations(users: int, items: int, seed: int = 0) -> Sequences:
    """Every user takes every item once, in a random order: nothing is ever repeated."""
    rng = np.random.default_rng(seed)
    seq = np.concatenate([rng.permutation(items) + 1 for _ in range(users)]).astype(np.int32)
    offsets = np.arange(users + 1, dtype=np.int64) * items
    return Sequences(items=seq, offsets=offsets, timestamps=None, user_ids=[str(u) for u in range(users)],
                     item_ids=[""] + [str(i) for i in range(1, items + 1)])


def test_learns_to_rank_items_it_has_read_lower_where_nobody_repeats():
    seqs = permutations(users=64, items=12)
    model = tiny_model(True, items=12, max_len=5)
    batcher = TrainBatcher(seqs, 5, 16, True, windows="sliding", stride=None, per_user=None)
    optimizer = make_optimizer(model, lr=1e-2, weight_decay=0.0)
    parts = TrainParts(model, batcher, optimizer, full_cross_entropy, CPU)
    train_loop(parts, LoopConfig(epochs=8, eval_every=1, seed=0), EarlyStopping(patience=50),
               TrainHooks(validate=lambda epoch: 0.0))
    model.eval()
    inputs = torch.tensor([[1, 2, 3, 4, 5], [12, 11, 10, 9, 8]])
    with torch.no_grad():
        offsets = model.window_offsets(inputs, model.last_hidden(inputs)).add_to(torch.zeros(2, 13))
        top = model.score_all(inputs).topk(4, dim=1).indices
    read = torch.zeros(2, 13, dtype=torch.bool).scatter(1, inputs, True)
    assert (offsets[read] < -1.0).all(), offsets[read]
    assert not read.gather(1, top).any()  # the top 4 of 7 unread items: none of the 5 read


def test_learns_a_positive_offset_where_users_repeat():
    """Each user cycles through three items of twelve: the next item is always the one read 3 steps ago."""
    rng = np.random.default_rng(1)
    loops = [rng.choice(12, size=3, replace=False) + 1 for _ in range(64)]
    seqs = Sequences(items=np.concatenate([np.tile(loop, 4) for loop in loops]).astype(np.int32),
                     offsets=np.arange(65, dtype=np.int64) * 12, timestamps=None,
                     user_ids=[str(u) for u in range(64)], item_ids=[""] + [str(i) for i in range(1, 13)])
    model = tiny_model(True, items=12, max_len=5)
    batcher = TrainBatcher(seqs, 5, 16, True, windows="sliding", stride=None, per_user=None)
    optimizer = make_optimizer(model, lr=1e-2, weight_decay=0.0)
    train_loop(TrainParts(model, batcher, optimizer, full_cross_entropy, CPU), LoopConfig(epochs=8, seed=0),
               EarlyStopping(patience=50), TrainHooks(validate=lambda epoch: 0.0))
    by_distance = model.repeat.by_distance.tolist()  # three steps back = distance 2 from the newest item
    assert by_distance[2] > 0.3 and all(v < -0.2 for d, v in enumerate(by_distance) if d != 2), by_distance
    model.eval()
    inputs = torch.tensor([[4, 9, 2, 4, 9]])  # a loop 4, 9, 2 never seen in training: next is 2
    with torch.no_grad():
        assert model.score_all(inputs).argmax().item() == 2


def test_masked_encoder_list_matches_the_encoders():
    masked = {name for name, enc in ENCODERS.items() if enc.objective == "masked_item"}
    assert masked == set(MASKED_ENCODERS)


@pytest.mark.parametrize("section, message", [
    ({"model": {"encoder": "bert4rec", "repeat_bias": True}}, "next-item encoder"),
    ({"model": {"repeat_bias": True}, "train": {"loss": "bce"}}, "train.loss full_ce only"),
])
def test_spec_refuses_what_repeat_bias_cannot_train(section, message):
    with pytest.raises(ValueError, match=message):
        ExperimentSpec.model_validate({"name": "x", "data": {"path": "x.txt"}, **section})
