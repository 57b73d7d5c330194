"""Raw readers and file opening: tiny fixtures for every format and compression, plus real-data counts."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import zipfile
from pathlib import Path
from typing import get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec_cli.data.io import open_binary, open_text, sha256_file
from seqrec_cli.data.item_readers import ITEM_READERS, read_item_info
from seqrec_cli.data.readers import INTERACTION_READERS, read_interactions
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import DataSpec, InteractionFormat, ItemInfoFormat, ItemInfoSpec

DATA_ROOT = Path(os.environ.get("SEQREC_DATA_ROOT") or Path(__file__).parents[2] / "shared" / "datasets")

WRITERS = {
    "": lambda path, data: path.write_bytes(data),
    ".gz": lambda path, data: path.write_bytes(gzip.compress(data)),
    ".xz": lambda path, data: path.write_bytes(lzma.compress(data)),
    ".bz2": lambda path, data: path.write_bytes(bz2.compress(data)),
}


def write(path: Path, text: str, compression: str = "", encoding: str = "utf-8") -> Path:
    """Write `text` to path + compression suffix (".zip" stores it as the archive's only member)."""
    target = path.with_name(path.name + compression)
    data = text.encode(encoding)
    if compression == ".zip":
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr(path.name, data)
    else:
        WRITERS[compression](target, data)
    return target


def spec(**kwargs: object) -> DataSpec:
    return DataSpec(**kwargs)


# ---------------------------------------------------------------------------------------------------
# io
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["", ".gz", ".xz", ".bz2", ".zip"])
def test_open_text_and_binary_decompress(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path / "a.txt", "héllo\nworld\n", compression)
    with open_text(path) as handle:
        assert handle.read() == "héllo\nworld\n"
    with open_binary(path) as handle:
        assert handle.read() == "héllo\nworld\n".encode()


def test_zip_member_choice(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("d/a.txt", "A")
        archive.writestr("d/b.txt", "B")
    with pytest.raises(DataError) as err:
        open_text(path)
    assert "d/a.txt" in str(err.value) and "d/b.txt" in str(err.value)
    with open_text(path, member="d/b.txt") as handle:
        assert handle.read() == "B"
    with open_text(path, member="a.txt") as handle:  # a bare name that is unique is enough
        assert handle.read() == "A"
    with pytest.raises(DataError, match="d/a.txt"):
        open_text(path, member="c.txt")


def test_missing_path_and_sha256(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        open_text(tmp_path / "nope.txt")
    assert err.value.where == str(tmp_path / "nope.txt") and err.value.fix
    path = write(tmp_path / "h.txt", "abc")
    assert sha256_file(path) == hashlib.sha256(b"abc").hexdigest()


def test_registries_cover_the_spec_literals() -> None:
    assert set(INTERACTION_READERS) == set(get_args(InteractionFormat))
    assert set(ITEM_READERS) == set(get_args(ItemInfoFormat))


# ---------------------------------------------------------------------------------------------------
# interaction formats
# ---------------------------------------------------------------------------------------------------

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\ti1\t4\t100\nu1\ti2\t5\t50\nu2\ti1\t3\t70\n"
)


@pytest.mark.parametrize("compression", ["", ".gz", ".zip"])
def test_recbole(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path / "toy.inter", INTER, compression)
    raw = read_interactions(path, spec(format="recbole", columns={"rating": "rating:float"}))
    assert raw.users.dtype == object and list(raw.users) == ["u1", "u1", "u2"]
    assert list(raw.items) == ["i1", "i2", "i1"] and isinstance(raw.items[0], str)
    assert raw.timestamps.dtype == np.float64 and list(raw.timestamps) == [100, 50, 70]
    assert list(raw.ratings) == [4, 5, 3]


def test_recbole_folder_and_no_time(tmp_path: Path) -> None:
    write(tmp_path / "toy.inter", INTER)
    write(tmp_path / "toy.item", "item_id:token\n")
    raw = read_interactions(tmp_path, spec(format="recbole", columns={"time": None}))
    assert len(raw) == 3 and raw.timestamps is None and raw.ratings is None
    write(tmp_path / "other.inter", INTER)
    with pytest.raises(DataError, match="data.interactions"):
        read_interactions(tmp_path, spec(format="recbole"))
    assert len(read_interactions(tmp_path, spec(format="recbole", interactions="other.inter"))) == 3


def test_movielens_100k_zip(tmp_path: Path) -> None:
    path = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-100k/", "")
        archive.writestr("ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        archive.writestr("ml-100k/u1.base", "1\t1\t1\t1\n")
        archive.writestr("ml-100k/u.item", "1|Toy Story (1995)|01-Jan-1995||url" + "|0" * 19 + "\n")
    raw = read_interactions(path, spec(format="movielens"))
    assert list(raw.users) == ["196", "186"] and list(raw.items) == ["242", "302"]
    assert list(raw.ratings) == [3, 3] and list(raw.timestamps) == [881250949, 891717742]
    assert "u.data" in raw.source


def test_movielens_dat_csv_and_folder(tmp_path: Path) -> None:
    dat = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3.5::978302109\n", ".xz")
    raw = read_interactions(dat, spec(format="movielens"))
    assert list(raw.items) == ["1193", "661"] and list(raw.ratings) == [5, 3.5]
    folder = tmp_path / "ml-latest"
    folder.mkdir()
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n")
    write(folder / "movies.csv", "movieId,title,genres\n")
    raw = read_interactions(folder, spec(format="movielens"))
    assert list(raw.users) == ["1", "1"] and list(raw.timestamps) == [964982703, 964981247]


@pytest.mark.parametrize("compression", ["", ".xz", ".zip"])
def test_user_item_lines(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path / "toy.txt", "1 10\n1 11\n2 10\n", compression)
    raw = read_interactions(path, spec(format="user_item_lines"))
    assert list(raw.users) == ["1", "1", "2"] and list(raw.items) == ["10", "11", "10"]
    assert raw.timestamps is None and raw.ratings is None and raw.users.dtype == object


def test_user_item_lines_loose_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path / "loose.txt", "1\t10\n\n1  11 \r\n2 10\n")  # the pyarrow fast path declines this
    raw = read_interactions(path, spec(format="user_item_lines"))
    assert list(raw.users) == ["1", "1", "2"] and list(raw.items) == ["10", "11", "10"]


@pytest.mark.parametrize("compression", ["", ".gz"])
def test_user_sequence_lines(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path / "seq.txt", "1 5 6 7\n2 6\n\n3 7 5\n", compression)
    raw = read_interactions(path, spec(format="user_sequence_lines"))
    assert list(raw.users) == ["1", "1", "1", "2", "3", "3"]
    assert list(raw.items) == ["5", "6", "7", "6", "7", "5"]
    assert raw.timestamps is None and raw.users.dtype == object


@pytest.mark.parametrize("compression", ["", ".gz"])
def test_table_csv_with_iso_dates(tmp_path: Path, compression: str) -> None:
    text = 'uid,iid,when,note\na,x,2020-01-01T00:00:00Z,"hi, there"\nb,y,2020-01-02,plain\n'
    path = write(tmp_path / "t.csv", text, compression)
    raw = read_interactions(
        path, spec(format="table", columns={"user": "uid", "item": "iid", "time": "when"})
    )
    assert list(raw.users) == ["a", "b"] and list(raw.items) == ["x", "y"]
    assert list(raw.timestamps) == [1577836800.0, 1577923200.0]


def test_table_tsv_and_explicit_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "user_id\titem_id\ttimestamp\trating\n1\t2\t3\t4.5\n")
    raw = read_interactions(path, spec(format="table", columns={"rating": "rating"}))
    assert list(raw.ratings) == [4.5] and list(raw.timestamps) == [3.0]
    path = write(tmp_path / "t.txt", "user_id;item_id;timestamp\n1;2;3\n")
    raw = read_interactions(path, spec(format="table", delimiter=";"))
    assert list(raw.items) == ["2"]


def test_table_parquet(tmp_path: Path) -> None:
    table = pa.table({"user_id": [1, 2], "item_id": ["a", "b"], "timestamp": [10.0, 20.0], "r": [1, 5]})
    pq.write_table(table, tmp_path / "t.parquet")
    raw = read_interactions(tmp_path / "t.parquet", spec(format="table", columns={"rating": "r"}))
    assert list(raw.users) == ["1", "2"] and list(raw.items) == ["a", "b"]
    assert list(raw.timestamps) == [10, 20] and list(raw.ratings) == [1, 5]


# ---------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "text", "line"),
    [
        ("user_item_lines", "a.txt", "1 2\n1 2 3\n", 2),
        ("user_item_lines", "b.txt", "1 2\n1 3\n\n7\n", 4),
        ("user_sequence_lines", "c.txt", "1 2 3\n4\n", 2),
        ("recbole", "d.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n", 3),
        ("recbole", "e.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n\n1\t2\tsoon\n", 4),
        ("table", "f.csv", "user_id,item_id,timestamp\n1,2,3\n1,2,3,4\n", 3),
        ("movielens", "ratings.dat", "1::2::3::4\n1::2::x::4\n", 2),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, fmt: str, name: str, text: str, line: int) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        read_interactions(path, spec(format=fmt))
    assert f"{path}:{line}" in str(err.value) and err.value.fix


@pytest.mark.parametrize("fmt", ["user_item_lines", "user_sequence_lines", "table"])
def test_undecodable_byte_names_its_line(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"user_id,item_id,timestamp\n1,2,3\n1,\xff,4\n" if fmt == "table" else b"1 2\n1 3\n1 \xff\n"
    )
    with pytest.raises(DataError, match=f"{path}:3"):
        read_interactions(path, spec(format=fmt))


def test_bad_rating_in_table(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user_id,item_id,timestamp,rating\n1,2,3,4\n1,3,4,five\n")
    with pytest.raises(DataError) as err:
        read_interactions(path, spec(format="table", columns={"rating": "rating"}))
    assert f"{path}:3" in str(err.value) and "five" in str(err.value)


@pytest.mark.parametrize(
    ("name", "fmt", "text"),
    [("m.csv", "table", "user_id,item_id,timestamp\n1,2,3\n"), ("m.inter", "recbole", INTER)],
)
def test_missing_column(tmp_path: Path, name: str, fmt: str, text: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        read_interactions(path, spec(format=fmt, columns={"rating": "stars"}))
    message = str(err.value)
    assert "'stars'" in message and "data.columns.rating" in message and "item_id" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("user_item_lines", "e.txt"),
        ("user_sequence_lines", "e.txt"),
        ("recbole", "e.inter"),
        ("table", "e.csv"),
        ("movielens", "u.data"),
    ],
)
def test_empty_file(tmp_path: Path, fmt: str, name: str) -> None:
    path = write(tmp_path / name, "\n")
    with pytest.raises(DataError, match="empty"):
        read_interactions(path, spec(format=fmt))


def test_header_only_is_no_interactions(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match="no interactions"):
        read_interactions(path, spec(format="table"))


# ---------------------------------------------------------------------------------------------------
# item side information
# ---------------------------------------------------------------------------------------------------


def items(base: Path, **kwargs: object):
    return read_item_info(base, ItemInfoSpec(**kwargs))


def test_recbole_items(tmp_path: Path) -> None:
    text = (
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Comedy\n"
    )
    write(tmp_path / "toy.item", text, ".gz")
    table = items(tmp_path, path="toy.item.gz", format="recbole")
    assert table.ids == ["1"]
    assert table.fields == {
        "movie_title": ["Toy Story"],
        "release_year": ["1995"],
        "class": ["Animation Comedy"],
    }


U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1" + "|0" * 13 + "\n"
    "2|Café (Le) (1996)|01-Jan-1996||http://y|0|0|0|0|0|0|0|0|1" + "|0" * 10 + "\n"
)


def test_movielens_items_all_layouts(tmp_path: Path) -> None:
    write(tmp_path / "u.item", U_ITEM, encoding="latin-1")
    table = items(tmp_path, path="u.item", format="movielens")
    assert table.ids == ["1", "2"]
    assert table.fields["title"] == ["Toy Story", "Café (Le)"] and table.fields["year"] == ["1995", "1996"]
    assert table.fields["genres"] == ["Animation, Children's, Comedy", "Drama"]

    write(
        tmp_path / "movies.dat",
        "1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Action\n",
        ".zip",
        "latin-1",
    )
    table = items(tmp_path, path="movies.dat.zip", format="movielens")
    assert table.fields == {
        "title": ["Toy Story", "Heat"],
        "year": ["1995"] * 2,
        "genres": ["Animation, Comedy", "Action"],
    }

    text = (
        'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama\n'
        "2,Untitled,(no genres listed)\n"
    )
    write(tmp_path / "movies.csv", text)
    table = items(tmp_path, path="movies.csv", format="movielens")
    assert table.fields["title"] == ["American President, The", "Untitled"]
    assert table.fields["year"] == ["1995", ""] and table.fields["genres"] == ["Comedy, Drama", ""]


def test_table_items_and_id_map(tmp_path: Path) -> None:
    write(tmp_path / "meta.csv", 'asin,title,brand,price\nB1,"Soap, large",Acme,3\nB2,Shampoo,,4\n')
    table = items(
        tmp_path, path="meta.csv", format="table", id_column="asin", text_columns=["title", "brand"]
    )
    assert table.ids == ["B1", "B2"] and table.fields == {
        "title": ["Soap, large", "Shampoo"],
        "brand": ["Acme", ""],
    }
    write(tmp_path / "map.txt", "1 B2\n2 B1\n3 B9\n")
    table = items(tmp_path, path="meta.csv", format="table", id_column="asin", id_map="map.txt")
    assert table.ids == ["1", "2", "3"] and table.fields["title"] == ["Shampoo", "Soap, large", ""]
    assert table.fields["price"] == ["4", "3", ""]
    with pytest.raises(DataError, match="data.items.text_columns"):
        items(tmp_path, path="meta.csv", format="table", id_column="asin", text_columns=["color"])


def test_table_items_parquet(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"item_id": [7, 8], "tags": [["a", "b"], None], "name": ["x", None]}), tmp_path / "i.parquet"
    )
    table = items(tmp_path, path="i.parquet", format="table")
    assert table.ids == ["7", "8"] and table.fields == {"tags": ["a, b", ""], "name": ["x", ""]}


def test_attributes_json(tmp_path: Path) -> None:
    write(tmp_path / "x_item2attributes.json", json.dumps({"1": [1, 2, 1], "2": [3]}))
    table = items(tmp_path, path="x_item2attributes.json", format="attributes_json")
    assert table.ids == ["1", "2"] and table.fields == {"attributes": ["1, 2", "3"]}
    write(tmp_path / "maps.json", json.dumps({"id2attribute": {"1": "Red", "2": "Soap"}}), ".xz")
    table = items(
        tmp_path, path="x_item2attributes.json", format="attributes_json", attribute_names="maps.json.xz"
    )
    assert table.fields == {"attributes": ["Red, Soap", "3"]}  # unnamed ids stay ids


def test_id_map_with_no_match_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "movies.dat", "1::Heat (1995)::Action\n")
    write(tmp_path / "map.txt", "1 99\n")
    with pytest.raises(DataError, match="id_map"):
        items(tmp_path, path="movies.dat", format="movielens", id_map="map.txt")


def test_bad_item_line(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "1::Heat (1995)::Action\n2::Broken\n")
    with pytest.raises(DataError, match=f"{path}:2"):
        items(tmp_path, path="movies.dat", format="movielens")


# ---------------------------------------------------------------------------------------------------
# real data (internal copies; skipped where absent)
# ---------------------------------------------------------------------------------------------------


def real(relative: str) -> Path:
    path = DATA_ROOT / relative
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def test_real_ml100k_recbole() -> None:
    raw = read_interactions(
        real("ml-100k/ml-100k.inter"), spec(format="recbole", columns={"rating": "rating"})
    )
    assert len(raw) == 100_000 and len(set(raw.users)) == 943 and len(set(raw.items)) == 1_682
    assert raw.ratings.min() == 1 and raw.ratings.max() == 5 and raw.timestamps.min() == 874724710


def test_real_ml1m_sasrec() -> None:
    raw = read_interactions(real("ml-1m/ml-1m.txt.xz"), spec(format="user_item_lines"))
    assert len(raw) == 999_611 and len(set(raw.users)) == 6_040 and len(set(raw.items)) == 3_416


def test_real_beauty_sequences() -> None:
    raw = read_interactions(real("amazon-beauty/Beauty.txt"), spec(format="user_sequence_lines"))
    assert len(raw) == 198_502 and len(set(raw.users)) == 22_363


def test_real_ml1m_titles_through_id_map() -> None:
    base = real("ml-1m")
    table = items(base, path="movies.dat", format="movielens", id_map="sas_to_original_items.txt")
    assert len(table.ids) == 3_416 and len(set(table.ids)) == 3_416
    assert "Toy Story" in table.fields["title"] and all(table.fields["title"])


def test_real_ml100k_items() -> None:
    table = items(real("ml-100k"), path="ml-100k.item", format="recbole")
    assert len(table.ids) == 1_682 and set(table.fields) == {"movie_title", "release_year", "class"}
