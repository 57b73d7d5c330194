"""Property-based fuzzing (Hypothesis) of the spec loader and every raw reader: random bytes, random
lines and random YAML. The only allowed outcomes are success or a UserError (exit 2); any other
exception is a bug. Readers and the loader are called in-process for speed; two subprocess checks
confirm that the CLI maps the same inputs to exit 0 or 2, never a traceback."""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_fixtures import child_env, seqrec_command
from seqrec_cli.data.item_readers import ITEM_READERS, read_id_map
from seqrec_cli.data.readers import INTERACTION_READERS
from seqrec_cli.errors import UserError
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.models import DataSpec, ItemInfoSpec

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

# Lines built from the characters that matter to these formats: separators, quotes, digits, dates.
ATOMS = st.sampled_from(
    [
        "u1",
        "i2",
        "7",
        "-3",
        "1.5",
        "nan",
        "inf",
        "1e400",
        "",
        " ",
        "\t",
        ",",
        ";",
        "|",
        "::",
        '"',
        "'",
        "\\",
        "2024-01-02",
        "2024-13-45T99:00",
        "user_id",
        "item_id",
        "timestamp",
        "rating",
        "item_id:token",
        "user_id:token",
        "timestamp:float",
        "\x00",
        "é",
        "\ufeff",
        "\r",
        "#",
        "null",
        "[",
        "]",
        "{",
        "}",
        "movieId",
        "userId",
        "title",
        "Toy (1995)",
    ]
)
LINE = st.lists(ATOMS, max_size=8).map("".join)
TEXT = st.lists(LINE, max_size=12).map("\n".join)
BYTES = st.binary(max_size=400)
CONTENT = st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), BYTES)
COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}


def outcome(call) -> str:
    """'ok' or 'user error'; anything else propagates and fails the test."""
    try:
        call()
    except UserError:
        return "user error"
    return "ok"


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="seqrec-fuzz-"))


@FUZZ
@given(fmt=st.sampled_from(sorted(INTERACTION_READERS)), content=CONTENT, name=st.sampled_from(
    ["log.csv", "log.tsv", "log.txt", "ml.inter", "u.data", "ratings.dat", "ratings.csv", "log.parquet"]),
    suffix=st.sampled_from(sorted(COMPRESS)), cut=st.integers(0, 3))
def test_interaction_readers_only_succeed_or_raise_user_errors(fmt, content, name, suffix, cut):
    folder = fresh_dir()
    data = COMPRESS[suffix](content)
    if suffix and cut:
        data = data[: len(data) * cut // 4]  # a truncated archive (interrupted download)
    path = folder / f"{name}{suffix}"
    path.write_bytes(data)
    spec = DataSpec(path=str(path), format=fmt)
    outcome(lambda: INTERACTION_READERS[fmt](path, spec))


@FUZZ
@given(content=CONTENT, member=st.sampled_from(["log.csv", "a/log.txt"]), damage=st.integers(0, 2))
def test_zip_inputs_only_succeed_or_raise_user_errors(content, member, damage):
    folder = fresh_dir()
    path = folder / "log.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, content)
    raw = bytearray(path.read_bytes())
    if damage == 1 and len(raw) > 60:
        raw[len(raw) // 3] ^= 0xFF
    elif damage == 2:
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))
    spec = DataSpec(path=str(path), format="user_item_lines")
    outcome(lambda: INTERACTION_READERS["user_item_lines"](path, spec))


@FUZZ
@given(fmt=st.sampled_from(sorted(ITEM_READERS)), content=CONTENT, name=st.sampled_from(
    ["items.csv", "ml.item", "u.item", "movies.dat", "movies.csv", "attrs.json"]))
def test_item_readers_only_succeed_or_raise_user_errors(fmt, content, name):
    folder = fresh_dir()
    (folder / name).write_bytes(content)
    spec = ItemInfoSpec(path=name, format=fmt)
    outcome(lambda: ITEM_READERS[fmt](folder, spec))
    (folder / "map.txt").write_bytes(content)
    outcome(lambda: read_id_map(folder / "map.txt"))


# Random YAML: mappings of spec-like keys to random scalars, lists and nested mappings.
KEYS = st.sampled_from(
    [
        "name",
        "data",
        "model",
        "train",
        "eval",
        "runtime",
        "export",
        "path",
        "format",
        "epochs",
        "lr",
        "ks",
        "monitor",
        "columns",
        "user",
        "split",
        "dataset",
        "hidden",
        "max_len",
        "x",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        ["2024-13-45", "1e-3", "NDCG@10", "table", "ml-100k", "~", "!!binary x", "&a", "*a", "<<"]
    ),
)
YAML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=20,
)


@FUZZ
@given(value=st.dictionaries(KEYS, YAML_VALUES, max_size=7), overrides=st.lists(st.tuples(
    st.lists(KEYS, min_size=1, max_size=3).map(".".join), st.text(max_size=10)), max_size=3))
def test_spec_loader_on_random_yaml(value, overrides):
    path = fresh_dir() / "spec.yaml"
    path.write_text(yaml.safe_dump(value, allow_unicode=True))
    outcome(lambda: load_spec(path, [f"{k}={v}" for k, v in overrides]))


@FUZZ
@given(
    content=st.one_of(
        TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
        BYTES,
        st.lists(
            st.sampled_from(
                [
                    "name: a\n",
                    "data:\n",
                    "  path: x\n",
                    "  format: table\n",
                    "train: {epochs: 1}\n",
                    "- a\n",
                    ": :\n",
                    "  - [\n",
                    "a: &x 1\n",
                    "b: *x\n",
                    "c: *y\n",
                    "d: !!python/object:os.system x\n",
                    "name: b\n",
                    "\t\n",
                    "e: 2024-13-45\n",
                ]
            ),
            max_size=10,
        ).map(lambda lines: "".join(lines).encode()),
    )
)
def test_spec_loader_on_random_bytes_and_lines(content):
    path = fresh_dir() / "spec.yaml"
    path.write_bytes(content)
    outcome(lambda: load_spec(path, []))


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"name: [\n", b"name: a\nname: b\n",
                                     b"e: 2024-13-45\n"])
def test_cli_maps_bad_specs_to_exit_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    done = subprocess.run([*seqrec_command(), "prepare", str(path), "--dry-run"], env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert str(path) in done.stderr


def test_cli_maps_a_damaged_archive_to_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "log.txt.bz2"
    data.write_bytes(bz2.compress(b"u1 i1\nu1 i2\nu1 i3\n" * 50)[:40])
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: z\ndata: {{path: {data}, format: user_item_lines}}\n"
                    f"runtime: {{output_root: {tmp_path / 'out'}}}\n")
    done = subprocess.run([*seqrec_command(), "prepare", str(spec)], env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert str(data) in done.stderr
