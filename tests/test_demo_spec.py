"""The demo trains for a fixed number of epochs, never a wall-clock budget, so `make demo` prints the
same numbers on a busy machine as on an idle one (the README quotes them)."""

from __future__ import annotations

import re
from pathlib import Path

from seqrec_cli.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "experiments" / "ml100k" / "sasrec.yaml"


def _demo_recipe() -> str:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^DEMO_SPEC := experiments/ml100k/sasrec.yaml$", makefile, re.M)
    return makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]


def test_demo_spec_has_no_wall_clock_budget():
    spec = load_spec(DEMO, [])
    assert spec.train.max_minutes is None
    assert spec.train.max_steps is None
    assert 1 <= spec.train.epochs <= 60  # under 5 minutes on an idle 2-core machine (README)
    assert spec.runtime.threads is not None  # the float summation order depends on the thread count


def test_make_demo_adds_no_budget_override():
    recipe = _demo_recipe()
    assert "seqrec finetune $(DEMO_SPEC)" in recipe
    assert "max_minutes" not in recipe and "max_steps" not in recipe
