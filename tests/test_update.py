"""Warm start across catalogues by raw item id and `seqrec update`.

Unit level: every encoder of the zoo with id, text and id+text items; a newer catalogue keeps the
learned row of every known raw id exactly, new items are rankable, vanished ones are gone. Pipeline
level (tiny timestamped table log): an update on a log with the same catalogue scores exactly as the
parent before any step, run.json records the parent, and bad parents exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from seqrec_cli.cli.app import app
from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.warm_start import remap_item_rows, row_map
from seqrec_cli.pipelines.build import build_model
from seqrec_cli.pipelines.common import load_dataset
from seqrec_cli.pipelines.transfer import init_from
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.models import ModelSpec, TextSpec

torch.set_num_threads(1)
runner = CliRunner()
D, E = 8, 6  # model width, text-vector width


def flat(text: str) -> str:
    return " ".join(text.split())


def text_vector(raw: str) -> torch.Tensor:
    """The same raw id always gets the same text vector, in any catalogue."""
    g = torch.Generator().manual_seed(int(raw[1:]))
    return torch.randn(E, generator=g)


def make_model(encoder: str, items: str, ids: list[str], seed: int) -> SeqRecModel:
    torch.manual_seed(seed)
    spec = ModelSpec(encoder=encoder, items=items, hidden=D, heads=2, layers=1, max_len=5, dropout=0.0,
                     text=TextSpec(template="{title}") if items != "id" else None)
    vectors = None
    if items != "id":
        vectors = torch.stack([torch.zeros(E), *[text_vector(r) for r in ids[1:]]])  # [N + 1, E]
    return SeqRecModel(spec, len(ids) - 1, vectors).eval()


OLD = ["", *[f"i{n}" for n in range(1, 12)]]  # 11 items
NEW = [
    "",
    "i7",
    "i3",
    "i12",
    "i1",
    "i2",
    "i9",
    "i13",
    "i4",
    "i5",
    "i6",
    "i8",
    "i10",
]  # i11 vanished, i12/i13 new


def test_row_map_by_raw_id() -> None:
    rows = row_map(OLD, NEW)
    assert rows.tolist() == [0, 7, 3, -1, 1, 2, 9, -1, 4, 5, 6, 8, 10]


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("items", ["id", "text", "id+text"])
def test_known_items_keep_exact_rows_new_items_rankable(encoder: str, items: str) -> None:
    old = make_model(encoder, items, OLD, seed=0)
    if old.item_emb is not None:  # trained-looking rows (id+text starts its id part at zero)
        with torch.no_grad():
            old.item_emb.weight.normal_()
            old.item_emb.weight[0].zero_()
    new = make_model(encoder, items, NEW, seed=1)
    state, done = remap_item_rows(old.state_dict(), OLD, NEW, has_text=new.text_items is not None)
    new.load_state_dict(state)  # strict: every other weight moves unchanged
    assert (done.kept, done.new, done.dropped) == (10, 2, 1)
    for key, value in old.state_dict().items():
        if not key.startswith("item_emb."):
            assert torch.equal(new.state_dict()[key], value), key
    if new.item_emb is not None:
        for j, raw in enumerate(NEW[1:], start=1):
            if raw in OLD:
                assert torch.equal(new.item_emb.weight[j], old.item_emb.weight[OLD.index(raw)]), raw
        fresh = [NEW.index("i12"), NEW.index("i13")]
        expected = torch.zeros(D) if items == "id+text" else old.item_emb.weight[1:].mean(0)
        for j in fresh:
            torch.testing.assert_close(new.item_emb.weight[j], expected, rtol=0, atol=1e-6)
    # the same raw-id histories score the same for every item both catalogues know
    histories = [["i1", "i2", "i3"], ["i9", "i4", "i5", "i6"]]
    def batch(ids: list[str]) -> torch.Tensor:
        out = torch.zeros(len(histories), 5, dtype=torch.long)
        for r, h in enumerate(histories):
            out[r, 5 - len(h):] = torch.tensor([ids.index(x) for x in h])
        return out

    with torch.no_grad():
        before, after = old.score_all(batch(OLD)), new.score_all(batch(NEW))
    shared = [raw for raw in NEW[1:] if raw in OLD]
    torch.testing.assert_close(
        after[:, [NEW.index(r) for r in shared]],
        before[:, [OLD.index(r) for r in shared]],
        rtol=1e-5,
        atol=1e-5,
    )
    assert torch.isfinite(after[:, 1:]).all()  # new items are rankable
    assert new.unrankable_items() is None


# --- pipeline level -------------------------------------------------------------------------------

def write_log(path: Path, users: int, extra_user: bool = False, new_items: bool = False) -> Path:
    """Timestamped table: user u walks items cyclically; ids are raw strings unlike the dense ones."""
    rows = ["user_id,item_id,timestamp"]
    rng = np.random.default_rng(0)
    for u in range(users):
        for j in range(6 + u % 4):
            rows.append(f"u{u},m{100 + (u + j) % 9},{1000 + 50 * u + 10 * j + int(rng.integers(0, 5))}")
    if extra_user:  # newer events over known items only: the same catalogue
        rows += [f"zz,m{100 + j},{9000 + j}" for j in range(4)]
    if new_items:  # newer events that bring two new items
        rows += [f"u{u},m{200 + u % 2},{9000 + u}" for u in range(users)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_spec(
    path: Path, name: str, log: Path, out: Path, items: str = "id", encoder: Path | None = None
) -> Path:
    path.write_text(f"""\
name: {name}
data: {{path: {log}, format: table}}
model: {{max_len: 8, hidden: 16, layers: 1, heads: 2, dropout: 0.1, items: {items}{"" if items == "id" else
    f", text: {{template: 'movie {{item_id}}', encoder: {encoder}}}"}}}
train: {{epochs: 2, batch_size: 8, lr: 0.01, seed: 3}}
update: {{epochs: 1, lr: 0.005}}
eval: {{ks: [5, 10], bootstrap: 0}}
runtime: {{device: cpu, precision: fp32, threads: 1, output_root: {out}}}
""")
    return path


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("update")
    out = root / "out"
    spec = write_spec(root / "old.yaml", "old", write_log(root / "old.csv", 20), out)
    result = runner.invoke(app, ["finetune", str(spec)])
    assert result.exit_code == 0, result.output
    return {"root": root, "out": out, "spec": spec, "run": out / "runs" / "old"}


def scores_of(model: SeqRecModel, item_ids: list[str], histories: list[list[str]]) -> torch.Tensor:
    batch = torch.zeros(len(histories), 8, dtype=torch.long)
    for r, h in enumerate(histories):
        batch[r, 8 - len(h):] = torch.tensor([item_ids.index(x) for x in h])
    with torch.no_grad():
        return model.eval().score_all(batch)


def test_warm_start_on_unchanged_catalogue_scores_exactly_as_the_parent(parent) -> None:
    """A newer log over the same items (one more user): before any update step, identical scores."""
    root = parent["root"]
    new_spec = load_spec(
        write_spec(
            root / "same.yaml", "same", write_log(root / "same.csv", 20, extra_user=True), parent["out"]
        )
    )
    runner.invoke(app, ["prepare", str(root / "same.yaml")])
    seqs, manifest, prepared = load_dataset(new_spec)
    built = build_model(new_spec, seqs, prepared)
    done = init_from(built.model, built.items_info, str(parent["run"]), manifest["fingerprint"]["hash"],
                     parent["out"] / "runs", item_ids=seqs.item_ids)
    assert done["mode"] == "warm_start" and done["new"] == 0 and done["dropped"] == 0
    old_spec = load_spec(parent["spec"])
    old_seqs, _, old_prepared = load_dataset(old_spec)
    old = build_model(old_spec, old_seqs, old_prepared).model
    old.load_state_dict(torch.load(parent["run"] / "checkpoints" / "best.pt", weights_only=True)["model"])
    for j, raw in enumerate(seqs.item_ids[1:], start=1):  # exact rows by raw id
        assert torch.equal(built.model.item_emb.weight[j], old.item_emb.weight[old_seqs.item_ids.index(raw)])
    histories = [["m100", "m101", "m102"], ["m105", "m104"]]
    assert torch.equal(
        scores_of(built.model, seqs.item_ids, histories), scores_of(old, old_seqs.item_ids, histories)
    )


def test_update_records_parent_and_new_items_are_rankable(parent) -> None:
    root = parent["root"]
    spec = write_spec(
        root / "newer.yaml", "newer", write_log(root / "newer.csv", 20, new_items=True), parent["out"]
    )
    result = runner.invoke(app, ["update", "old", str(spec), "--replay", "0.5"])
    assert result.exit_code == 0, result.output
    info = json.loads((parent["out"] / "runs" / "newer" / "run.json").read_text())
    assert info["parent"]["source"] == "old" and info["parent"]["path"].endswith("best.pt")
    assert info["update"]["warm_start"]["new"] == 2 and info["update"]["warm_start"]["kept"] == 9
    assert info["update"]["since"] == pytest.approx(
        1000 + 50 * 19 + 10 * 8 + 4, abs=5
    )  # the parent's last event
    assert info["data_until"] == 9019.0 and info["train_positions_per_epoch"] > 0
    new_spec = load_spec(spec)
    seqs, manifest, prepared = load_dataset(new_spec)
    built = build_model(new_spec, seqs, prepared)
    built.model.load_state_dict(torch.load(parent["out"] / "runs" / "newer" / "checkpoints" / "best.pt",
                                           weights_only=True)["model"])
    scores = scores_of(built.model, seqs.item_ids, [["m100", "m101", "m102"]])
    assert torch.isfinite(scores[0, [seqs.item_ids.index("m200"), seqs.item_ids.index("m201")]]).all()


def test_active_since_trains_only_recent_users_plus_replay(parent) -> None:
    from seqrec_cli.pipelines.common import split_plan

    spec = load_spec(parent["spec"], ["train.active_since=1500"])
    seqs, _, _ = load_dataset(spec)
    last = np.maximum.reduceat(seqs.timestamps, seqs.offsets[:-1])
    plan = split_plan(spec, seqs)
    assert (plan.train_len[last < 1500] == 0).all() and (plan.train_len[last >= 1500] > 0).all()
    replayed = split_plan(load_spec(parent["spec"], ["train.active_since=1500", "train.replay=1.0"]), seqs)
    assert (replayed.train_len > 0).all()


def test_bad_parents_exit_2(parent, tmp_path: Path, tiny_encoder: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("user_id,item_id,timestamp\n" + "".join(f"a{u},x{(u + j) % 7},{j}\n"
                                                            for u in range(6) for j in range(5)))
    spec = write_spec(tmp_path / "other.yaml", "other", other, parent["out"])
    result = runner.invoke(app, ["update", "old", str(spec)])
    assert result.exit_code == 2 and "shares no raw item id" in flat(result.output)
    newer = write_log(tmp_path / "newer.csv", 20, extra_user=True)
    text = write_spec(tmp_path / "text.yaml", "as-text", newer, parent["out"], items="text",
                      encoder=tiny_encoder)
    result = runner.invoke(app, ["update", "old", str(text)])
    assert result.exit_code == 2 and "model.items" in flat(result.output)
    result = runner.invoke(app, ["update", str(tmp_path / "missing"), str(spec)])
    assert result.exit_code == 2


def test_update_from_an_export_trains_every_user(parent) -> None:
    """An export carries its raw item ids but no timestamps: the update warm-starts and trains on all
    users."""
    root = parent["root"]
    result = runner.invoke(app, ["export", str(parent["spec"])])
    assert result.exit_code == 0, result.output
    spec = write_spec(
        root / "from-export.yaml",
        "from-export",
        write_log(root / "fe.csv", 20, new_items=True),
        parent["out"],
    )
    result = runner.invoke(
        app, ["update", str(parent["out"] / "exports" / "old"), str(spec), "--epochs", "1"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads((parent["out"] / "runs" / "from-export" / "run.json").read_text())
    assert info["update"]["since"] is None and info["update"]["warm_start"]["kept"] == 9
    assert info["parent"]["path"].endswith("exports/old")


def test_context_rows_place_new_items_along_their_preceding_states() -> None:
    from seqrec_cli.core.warm_start import context_rows

    model = make_model("sasrec", "id", OLD, seed=0)
    before = model.item_emb.weight.detach().clone()
    prefixes = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 4, 5], [0, 0, 0, 0, 6]])  # [P, L]
    items = torch.tensor([9, 9, 10])  # item 9 followed two histories, item 10 one
    assert context_rows(model, items, prefixes, scale=0.5) == 2
    with torch.no_grad():
        states = model.last_hidden(prefixes)  # [P, D]
    norm = before[[i for i in range(1, 12) if i not in (9, 10)]].norm(dim=1).mean()
    for item, state in ((9, states[0] + states[1]), (10, states[2])):
        row = model.item_emb.weight[item].detach()
        torch.testing.assert_close(row, state / state.norm() * norm * 0.5, rtol=1e-5, atol=1e-6)
    untouched = [i for i in range(12) if i not in (9, 10)]
    assert torch.equal(model.item_emb.weight[untouched], before[untouched])
