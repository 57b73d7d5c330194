"""Learning-rate schedules against hand-computed factors, and that they drive the optimizer."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec_cli.core.schedule import lr_factor, make_scheduler


def test_warmup_is_linear_from_the_first_step():
    assert [lr_factor(s, 100, 4, "constant") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


@pytest.mark.parametrize(("step", "expected"), [(0, 1.0), (5, 0.5), (10, 0.0), (12, 0.0)])
def test_linear_decay_reaches_zero_at_the_last_step(step, expected):
    assert lr_factor(step, 10, 0, "linear") == pytest.approx(expected)


def test_cosine_after_warmup():
    # warmup 2, then cosine over the remaining 8 steps: halfway (step 6) is 0.5, step 4 is (1 + cos(pi/4)) / 2
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(4, 10, 2, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(10, 10, 2, "cosine") == pytest.approx(0.0)


def test_scheduler_sets_the_optimizer_lr_and_round_trips():
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = make_scheduler(opt, total_steps=10, warmup_steps=0, kind="linear")
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    opt2 = torch.optim.SGD([param], lr=0.1)
    sched2 = make_scheduler(opt2, total_steps=10, warmup_steps=0, kind="linear")
    sched2.load_state_dict(sched.state_dict())
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.04)
