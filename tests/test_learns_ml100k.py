"""The model learns on real data: on MovieLens-100K, SASRec trained through the real
prepare -> finetune -> evaluate path clearly beats most-popular on the test split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from seqrec_cli.core.baselines import training_popularity
from seqrec_cli.core.evaluation import rank_targets
from seqrec_cli.core.metrics import metrics_at_k
from seqrec_cli.pipelines.common import load_dataset
from seqrec_cli.pipelines.evaluate import evaluate
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("SEQREC_DATA_ROOT", REPO.parent / "shared" / "datasets"))
pytestmark = pytest.mark.skipif(not (DATA_ROOT / "ml-100k" / "ml-100k.inter").is_file(),
                                reason="MovieLens-100K not available under the data root")

# A shorter window and more steps per epoch than the demo spec so this fits a CI budget.
FAST = ["model.max_len=50", "train.batch_size=64", "train.epochs=25", "train.eval_every=5",
        "train.max_minutes=null", "runtime.device=cpu"]


@pytest.fixture
def all_cores():
    """Other test modules pin torch to one thread; this one trains for real, so use the machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def test_sasrec_clearly_beats_most_popular_on_ml100k(tmp_path, all_cores):
    spec = load_spec(REPO / "experiments/ml100k/sasrec.yaml",
                     [f"runtime.output_root={tmp_path}", f"runtime.data_root={DATA_ROOT}", *FAST])
    finetune(spec)
    model_metrics = evaluate(spec, "test").report.metrics

    seqs, _, _ = load_dataset(spec)
    popularity = training_popularity(seqs)  # [N + 1]
    ranks = rank_targets(lambda inputs: popularity.expand(len(inputs), -1), seqs, "test", spec.model.max_len,
                         256, True, torch.device("cpu"))
    pop_metrics = metrics_at_k(ranks, [10])

    assert model_metrics["NDCG@10"] > 1.25 * pop_metrics["NDCG@10"], (model_metrics, pop_metrics)
    assert model_metrics["HR@10"] > 1.25 * pop_metrics["HR@10"], (model_metrics, pop_metrics)
