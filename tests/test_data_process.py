"""build_sequences on hand-made interactions, and the prepared-dataset folder round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqrec_cli.data.process import Sequences, build_sequences
from seqrec_cli.data.raw import ItemTable, RawInteractions
from seqrec_cli.data.store import load_item_rows, load_prepared, read_manifest, write_prepared
from seqrec_cli.errors import DataError, UserError
from seqrec_cli.spec.models import DataSpec


def raw(rows: list[tuple], with_time: bool = True, ratings: list[float] | None = None) -> RawInteractions:
    """rows: (user, item) or (user, item, time)."""
    users = np.array([str(r[0]) for r in rows], dtype=object)
    items = np.array([str(r[1]) for r in rows], dtype=object)
    ts = np.array([float(r[2]) for r in rows]) if with_time else None
    rt = None if ratings is None else np.array(ratings, dtype=np.float64)
    return RawInteractions(users=users, items=items, timestamps=ts, ratings=rt, source="hand.csv")


def raw_sequences(seqs: Sequences) -> dict[str, list[str]]:
    """user raw id -> chronological raw item ids, through the dense id maps."""
    return {
        seqs.user_ids[u]: [seqs.item_ids[i] for i in seqs.user_items(u).tolist()]
        for u in range(seqs.num_users)
    }


def test_stable_time_sort_ties_keep_row_order():
    rows = [
        ("u1", "a", 5), ("u2", "x", 2), ("u1", "b", 3), ("u1", "c", 5),
        ("u2", "y", 1), ("u1", "d", 3), ("u2", "z", 2), ("u1", "e", 1),
    ]
    seqs = build_sequences(raw(rows), DataSpec())
    assert raw_sequences(seqs) == {"u1": ["e", "b", "d", "a", "c"], "u2": ["y", "x", "z"]}
    # timestamps follow their interactions
    assert seqs.timestamps.tolist() == [1, 3, 3, 5, 5, 1, 2, 2]
    assert seqs.offsets.tolist() == [0, 5, 8]
    assert seqs.items.dtype == np.int32


def test_no_timestamps_keeps_file_order():
    rows = [("u1", "c", 9), ("u2", "a", 0), ("u1", "a", 1), ("u2", "b", 0), ("u1", "b", 5), ("u2", "c", 0)]
    seqs = build_sequences(raw(rows, with_time=False), DataSpec())
    assert seqs.timestamps is None
    assert raw_sequences(seqs) == {"u1": ["c", "a", "b"], "u2": ["a", "b", "c"]}


def test_min_rating():
    rows = [("u", "a", 1), ("u", "b", 2), ("u", "c", 3), ("u", "d", 4), ("u", "e", 5)]
    seqs = build_sequences(raw(rows, ratings=[5, 3.5, 4, 1, 4.5]), DataSpec(min_rating=4))
    assert raw_sequences(seqs) == {"u": ["a", "c", "e"]}  # 4 is kept (>=), 3.5 and 1 are not
    with pytest.raises(DataError, match="rating"):
        build_sequences(raw(rows), DataSpec(min_rating=4))  # no rating column


@pytest.mark.parametrize(
    ("dedup", "expected"),
    [
        ("none", ["a", "b", "a", "c", "b", "d"]),
        ("first", ["a", "b", "c", "d"]),
        ("last", ["a", "c", "b", "d"]),
    ],
)
def test_dedup(dedup, expected):
    # u's history in time order: a b a c b d (rows shuffled in the file)
    rows = [("u", "c", 4), ("u", "a", 1), ("u", "b", 5), ("u", "a", 3), ("u", "d", 6), ("u", "b", 2),
            ("v", "a", 1), ("v", "a", 2), ("v", "e", 3), ("v", "f", 4)]
    seqs = build_sequences(raw(rows), DataSpec(dedup=dedup))
    assert raw_sequences(seqs)["u"] == expected
    assert raw_sequences(seqs)["v"] == (["a", "a", "e", "f"] if dedup == "none" else ["a", "e", "f"])


def test_dedup_last_timestamps_follow_kept_rows():
    rows = [("u", "a", 1), ("u", "b", 2), ("u", "a", 3), ("u", "c", 4)]
    seqs = build_sequences(raw(rows), DataSpec(dedup="last"))
    assert raw_sequences(seqs) == {"u": ["b", "a", "c"]}
    assert seqs.timestamps.tolist() == [2, 3, 4]


def test_iterative_kcore_cascades():
    # user_core=3, item_core=2. Round 1 drops item X (seen once); then u2 has 2 items and goes;
    # then D is left with 1 interaction and goes; then u3 has 2 items and goes. u1, u4 remain.
    rows = [
        ("1", "A", 1), ("1", "B", 2), ("1", "C", 3),
        ("2", "A", 1), ("2", "D", 2), ("2", "X", 3),
        ("3", "D", 1), ("3", "B", 2), ("3", "C", 3),
        ("4", "A", 1), ("4", "B", 2), ("4", "C", 3),
    ]
    seqs = build_sequences(raw(rows), DataSpec(user_core=3, item_core=2))
    assert raw_sequences(seqs) == {"1": ["A", "B", "C"], "4": ["A", "B", "C"]}
    assert seqs.item_ids == ["", "A", "B", "C"]
    assert seqs.num_items == 3 and seqs.num_users == 2
    # Without k-core everything stays (min_user_len=3 keeps all four users).
    assert build_sequences(raw(rows), DataSpec()).num_users == 4


def test_min_user_len_drops_short_users():
    rows = [("a", "1", 1), ("a", "2", 2), ("b", "1", 1), ("b", "2", 2), ("b", "3", 3), ("b", "4", 4)]
    seqs = build_sequences(raw(rows), DataSpec(min_user_len=4))
    assert seqs.user_ids == ["b"]


def test_ids_in_natural_numeric_order():
    rows = [("10", "10", 1), ("10", "2", 2), ("10", "1", 3), ("9", "100", 1), ("9", "2", 2), ("9", "20", 3)]
    seqs = build_sequences(raw(rows), DataSpec())
    assert seqs.user_ids == ["9", "10"]  # not "10" < "9" as strings
    assert seqs.item_ids == ["", "1", "2", "10", "20", "100"]
    assert seqs.user_items(1).tolist() == [3, 2, 1]  # user "10": items 10, 2, 1
    assert seqs.user_items(0).tolist() == [5, 2, 4]  # user "9": items 100, 2, 20


def test_non_numeric_ids_sorted_as_strings():
    rows = [("b", "x10", 1), ("b", "x9", 2), ("b", "7", 3), ("a", "x9", 1), ("a", "x10", 2), ("a", "7", 3)]
    seqs = build_sequences(raw(rows), DataSpec())
    assert seqs.user_ids == ["a", "b"]
    assert seqs.item_ids == ["", "7", "x10", "x9"]


def test_numeric_ids_beyond_int64_do_not_crash():
    big = "18446744073709551615"  # uint64 max, e.g. a hashed id: does not fit int64
    rows = [(big, "1", 1), (big, "2", 2), (big, "3", 3), ("5", "3", 1), ("5", "2", 2), ("5", "1", 3)]
    seqs = build_sequences(raw(rows), DataSpec())
    assert sorted(seqs.user_ids) == sorted([big, "5"])
    assert raw_sequences(seqs) == {big: ["1", "2", "3"], "5": ["3", "2", "1"]}


def test_empty_after_filter_names_the_knobs():
    rows = [("u", "a", 1), ("u", "b", 2), ("u", "c", 3)]
    with pytest.raises(DataError) as info:
        build_sequences(raw(rows, ratings=[5, 5, 5]), DataSpec(min_rating=2, user_core=5, item_core=1))
    text = str(info.value)
    for knob in ("min_rating", "user_core", "item_core", "min_user_len"):
        assert knob in text
    assert "user_core=5" in text
    assert "hand.csv" in text  # where
    with pytest.raises(DataError, match="no interactions left"):
        build_sequences(raw(rows, ratings=[1, 1, 1]), DataSpec(min_rating=2))


def small_sequences() -> Sequences:
    rows = [("1", "i2", 1), ("1", "i1", 2), ("1", "i3", 3), ("2", "i3", 1), ("2", "i2", 2), ("2", "i1", 3),
            ("2", "i4", 4)]
    return build_sequences(raw(rows), DataSpec())


def test_prepared_round_trip(tmp_path):
    seqs = small_sequences()
    table = ItemTable(ids=["i3", "i1", "zz"], fields={"title": ["Three", "One", "unused"]})
    folder = tmp_path / "prep" / "ds"
    manifest = write_prepared(folder, seqs, table, {"dataset": "toy"})
    assert manifest["fingerprint"]["users"] == 2
    assert manifest["fingerprint"]["items"] == 4
    assert manifest["fingerprint"]["interactions"] == 7
    assert manifest["dataset"] == "toy" and manifest["has_timestamps"] is True
    assert manifest["item_fields"] == ["title"]
    assert read_manifest(folder) == manifest
    assert [p.name for p in folder.parent.iterdir()] == ["ds"]  # no temp folder left behind

    loaded, manifest2 = load_prepared(folder)
    assert manifest2 == manifest
    np.testing.assert_array_equal(loaded.items, seqs.items)
    np.testing.assert_array_equal(loaded.offsets, seqs.offsets)
    np.testing.assert_array_equal(loaded.timestamps, seqs.timestamps)
    assert loaded.user_ids == seqs.user_ids and loaded.item_ids == seqs.item_ids
    assert load_item_rows(folder) == [
        {"item_id": "i1", "title": "One"}, {"item_id": "i2", "title": ""},
        {"item_id": "i3", "title": "Three"}, {"item_id": "i4", "title": ""},
    ]


def test_prepared_without_timestamps(tmp_path):
    seqs = build_sequences(raw([("u", "a", 0), ("u", "b", 0), ("u", "c", 0)], with_time=False), DataSpec())
    write_prepared(tmp_path / "p", seqs, None, {})
    loaded, manifest = load_prepared(tmp_path / "p")
    assert loaded.timestamps is None and manifest["has_timestamps"] is False
    assert not (tmp_path / "p" / "timestamps.npy").exists()


@pytest.mark.parametrize("victim", ["sequences.npy", "user_ids.json", "item_ids.json", "offsets.npy"])
def test_tampered_dataset_fails_fingerprint(tmp_path, victim):
    seqs = small_sequences()
    folder = tmp_path / "ds"
    write_prepared(folder, seqs, None, {})
    path = folder / victim
    if victim == "sequences.npy":
        np.save(path, seqs.items[::-1].copy())  # same size and dtype, different content
    elif victim == "offsets.npy":
        np.save(path, np.array([0, 4, 7], dtype=np.int64))
    else:
        ids = json.loads(path.read_text())
        ids[-1], ids[-2] = ids[-2], ids[-1]
        path.write_text(json.dumps(ids))
    with pytest.raises(UserError, match="fingerprint"):
        load_prepared(folder)
    load_prepared(folder, verify=False)  # opt-out still reads it


def test_missing_manifest_is_user_error(tmp_path):
    with pytest.raises(UserError, match="manifest"):
        load_prepared(tmp_path)


def test_write_into_existing_folder_fails_untouched(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(OSError):
        write_prepared(folder, small_sequences(), None, {})
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert (folder / "keep.txt").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # the temp folder was cleaned up
