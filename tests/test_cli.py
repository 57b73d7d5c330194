"""The `seqrec` command line: help, --dry-run, and every known user error exiting 2 with where + fix."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import seqrec_cli
from seqrec_cli.cli.app import app

REPO = Path(__file__).resolve().parents[1]
SRC = Path(seqrec_cli.__file__).resolve().parent  # the package these tests import
DATA_ROOT = Path(
    os.environ.get("SEQREC_DATA_ROOT") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)
COMMANDS = ("prepare", "finetune", "evaluate", "export")  # the commands that take a spec
ALL_COMMANDS = sorted({c.name for c in app.registered_commands} | set(COMMANDS))

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_interactions(path: Path, users: int = 30, items: int = 20) -> Path:
    """`user item` lines, chronological per user: user u walks the catalogue from a start item."""
    lines = []
    for u in range(1, users + 1):
        start = (7 * u) % items
        for j in range(5 + u % 4):
            lines.append(f"{u} {1000 + 3 * ((start + j) % items)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_spec(tmp_path: Path, data_path: Path | str, extra: str = "", name: str = "tiny") -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""\
name: {name}
data:
  path: {data_path}
  format: user_item_lines
model:
  max_len: 10
  hidden: 16
  layers: 1
train:
  epochs: 2
  batch_size: 16
eval:
  ks: [5, 10]
runtime:
  device: cpu
  threads: 1
  output_root: {tmp_path / "out"}
{extra}""")
    return spec


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A valid spec over a small synthetic dataset, everything written under tmp_path."""
    return write_spec(tmp_path, write_interactions(tmp_path / "interactions.txt"))


def assert_user_error(result, *needles: str) -> None:
    """Exit 2, `error:` and a `fix:` on stderr, every needle on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    err = result.stderr
    assert err.startswith("error: "), err
    assert "\n  fix: " in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------
# help and dry runs
# ---------------------------------------------------------------------------------------------------


def test_top_level_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for command in ALL_COMMANDS:
        assert command in result.output


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "Usage" in result.output
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_command_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if command in COMMANDS:
        assert "--set" in result.output and "--dry-run" in result.output
    if command == "finetune":
        assert "--resume" in result.output
    if command == "evaluate":
        assert "--split" in result.output


def test_module_help_in_a_real_subprocess() -> None:
    result = subprocess.run([sys.executable, "-m", "seqrec_cli", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_dry_run_prints_resolved_spec(tiny: Path, command: str) -> None:
    result = invoke(command, tiny, "--dry-run", "--set", "train.epochs=9", "--set", "model.dropout=0.3")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "is valid" in out and "spec hash" in out
    assert "name: tiny" in out
    assert "epochs: 9" in out and "dropout: 0.3" in out
    assert "hidden: 16" in out
    assert "patience: 10" in out  # a default, resolved into the printout
    # everything after the header line is the resolved spec as valid YAML, long paths unbroken
    header, _, body = out.partition("\n")
    assert header.startswith("# spec ") and str(tiny) in header
    resolved = yaml.safe_load(body)
    assert resolved["train"]["epochs"] == 9 and resolved["model"]["dropout"] == 0.3
    assert resolved["runtime"]["output_root"] == str(tiny.parent / "out")
    assert set(resolved) == {"name", "data", "model", "train", "eval", "runtime", "export", "update"}
    # nothing was prepared, trained or exported
    assert not (tiny.parent / "out").exists()


def test_dry_run_of_shipped_spec() -> None:
    result = invoke("finetune", REPO / "experiments" / "ml100k" / "sasrec.yaml", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "name: ml100k-sasrec" in result.output


# ---------------------------------------------------------------------------------------------------
# spec errors
# ---------------------------------------------------------------------------------------------------


def test_spec_typo_exits_2_naming_file_and_key(tiny: Path) -> None:
    tiny.write_text(tiny.read_text().replace("  layers: 1\n", "  layers: 1\n  hiden: 32\n"))
    result = invoke("prepare", tiny)
    assert_user_error(result, "spec.yaml", "model.hiden (line 9)", "unknown key")


def test_set_typo_is_marked_as_coming_from_set(tiny: Path) -> None:
    result = invoke("finetune", tiny, "--set", "train.epochz=3")
    assert_user_error(result, "train.epochz [from --set]", "unknown key")


def test_malformed_set_exits_2(tiny: Path) -> None:
    result = invoke("finetune", tiny, "--set", "foo")
    assert_user_error(result, "--set", "section.key=value")


def test_bad_choice_exits_2_naming_allowed_values(tiny: Path) -> None:
    result = invoke("finetune", tiny, "--set", "model.encoder=transformerx", "--dry-run")
    assert_user_error(result, "model.encoder", "'sasrec'", "transformerx")


def test_missing_spec_file_exits_2(tmp_path: Path) -> None:
    result = invoke("prepare", tmp_path / "no-such-spec.yaml")
    assert_user_error(result, "no-such-spec.yaml", "not found")


# ---------------------------------------------------------------------------------------------------
# data errors
# ---------------------------------------------------------------------------------------------------


def test_missing_data_file_mentions_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQREC_DATA_ROOT", raising=False)
    spec = write_spec(tmp_path, "not-there/interactions.txt")
    result = invoke("prepare", spec)
    assert_user_error(result, "data file not found", "SEQREC_DATA_ROOT", "not-there")
    assert not (tmp_path / "out" / "prepared").exists() or not any((tmp_path / "out" / "prepared").iterdir())


def test_missing_known_dataset_names_url_and_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQREC_DATA_ROOT", str(tmp_path / "empty-root"))
    spec = tmp_path / "known.yaml"
    spec.write_text(f"name: k\ndata:\n  dataset: ml-100k\nruntime:\n  output_root: {tmp_path / 'out'}\n")
    result = invoke("prepare", spec)
    assert_user_error(result, "SEQREC_DATA_ROOT", "empty-root", "grouplens", "4edb74e2a811")


def test_unparsable_line_names_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.txt"
    data.write_text("1 10\n1 11\n1 12 13\n2 10\n")
    result = invoke("prepare", write_spec(tmp_path, data))
    assert_user_error(result, f"{data}:3", "found 3")


def test_empty_after_filter_exits_2(tiny: Path) -> None:
    result = invoke("prepare", tiny, "--set", "data.user_core=1000")
    assert_user_error(result, "no interactions left after filtering", "user_core=1000")
    assert not (tiny.parent / "out" / "prepared").exists() or not any(
        (tiny.parent / "out" / "prepared").iterdir()
    )


def test_prepare_into_existing_prepared_dir_with_other_data_spec(tiny: Path) -> None:
    prepared = tiny.parent / "my-prepared"
    first = invoke("prepare", tiny, "--set", f"data.prepared_dir={prepared}")
    assert first.exit_code == 0, first.output
    before = snapshot(prepared)
    assert "manifest.json" in before
    result = invoke("prepare", tiny, "--set", f"data.prepared_dir={prepared}", "--set", "data.dedup=first")
    assert_user_error(result, str(prepared), "different data spec")
    assert snapshot(prepared) == before
    # the same data spec again is a no-op
    again = invoke("prepare", tiny, "--set", f"data.prepared_dir={prepared}")
    assert again.exit_code == 0 and "already prepared" in again.output
    assert snapshot(prepared) == before


# ---------------------------------------------------------------------------------------------------
# run-folder errors
# ---------------------------------------------------------------------------------------------------


def test_evaluate_before_training_names_missing_checkpoint(tiny: Path) -> None:
    assert invoke("prepare", tiny).exit_code == 0
    result = invoke("evaluate", tiny, "--split", "valid")
    assert_user_error(result, "checkpoint not found", str(Path("runs") / "tiny" / "checkpoints" / "best.pt"))
    assert not (tiny.parent / "out" / "runs" / "tiny" / "eval").exists()


def test_export_before_training_exits_2(tiny: Path) -> None:
    assert invoke("prepare", tiny).exit_code == 0
    result = invoke("export", tiny)
    assert_user_error(result, "checkpoint not found")
    assert not (tiny.parent / "out" / "exports").exists()


def test_repeat_bias_trains_and_evaluates_but_export_refuses_it(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, write_interactions(tmp_path / "interactions.txt"))
    spec.write_text(spec.read_text().replace("  layers: 1\n", "  layers: 1\n  repeat_bias: true\n"))
    for command in (("finetune", spec), ("evaluate", spec, "--split", "valid")):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
    assert_user_error(invoke("export", spec), "model.repeat_bias", "cannot be exported")
    assert not (tmp_path / "out" / "exports").exists()


def test_repeat_bias_with_a_masked_encoder_exits_2(tiny: Path) -> None:
    result = invoke("finetune", tiny, "--set", "model.encoder=bert4rec", "--set", "model.repeat_bias=true")
    assert_user_error(result, "model.repeat_bias needs a next-item encoder")


def test_evaluate_bad_split_is_a_usage_error(tiny: Path) -> None:
    result = invoke("evaluate", tiny, "--split", "train")
    assert result.exit_code == 2
    assert "train" in result.output


def test_finetune_into_existing_run_folder_without_resume(tiny: Path) -> None:
    run = tiny.parent / "out" / "runs" / "tiny"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text('{"name": "tiny", "status": "finished"}\n')
    (run / "spec.yaml").write_text("name: tiny\n# the original spec\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 3.0}\n')
    (run / "checkpoints" / "best.pt").write_bytes(b"\x00not really a checkpoint\xff")
    before = snapshot(run)
    result = invoke("finetune", tiny)
    assert_user_error(result, str(run), "already exists", "--resume")
    assert snapshot(run) == before


def test_resume_of_run_made_by_another_spec_is_refused(tiny: Path) -> None:
    run = tiny.parent / "out" / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"name": "tiny", "resumable_hash": "0000"}\n')
    before = snapshot(run)
    result = invoke("finetune", tiny, "--resume")
    assert_user_error(result, str(run), "different spec")
    assert snapshot(run) == before


def test_monitor_not_computed_exits_2(tiny: Path) -> None:
    result = invoke("finetune", tiny, "--set", "train.monitor=NDCG@20")
    assert_user_error(result, "train.monitor", "eval.ks")


# ---------------------------------------------------------------------------------------------------
# real data (skipped when the datasets are not there)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not (DATA_ROOT / "ml-100k" / "ml-100k.inter").is_file(), reason="ml-100k not available")
def test_prepare_real_ml100k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQREC_DATA_ROOT", str(DATA_ROOT))
    spec = REPO / "experiments" / "ml100k" / "sasrec.yaml"
    result = invoke("prepare", spec, "--set", f"runtime.output_root={tmp_path}")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "943 users" in result.output
    assert "prepared" in result.output
    again = invoke("prepare", spec, "--set", f"runtime.output_root={tmp_path}")
    assert again.exit_code == 0 and "already prepared" in again.output


# ---------------------------------------------------------------------------------------------------
# import hygiene
# ---------------------------------------------------------------------------------------------------


def test_cli_import_and_help_do_not_import_torch(tiny: Path) -> None:
    code = (
        "import sys\n"
        "import seqrec_cli.cli.app as m\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner()\n"
        "for args in (['--help'], ['finetune', '--help'], ['evaluate', '--help'],\n"
        "             ['prepare', sys.argv[1], '--dry-run']):\n"
        "    res = r.invoke(m.app, args)\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "    assert 'torch' not in sys.modules, args\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_typer_rich_or_yaml() -> None:
    files = sorted((SRC / "core").glob("*.py"))
    assert len(files) >= 5
    banned = {"typer", "rich", "yaml", "click"}
    for path in files:
        tops = {name.split(".")[0] for name in _imported_modules(path)}
        assert not tops & banned, f"{path.name} imports {tops & banned}"
        # nor through the spec loader, which pulls in yaml
        assert "seqrec_cli.spec.loader" not in _imported_modules(path), path.name


def test_import_scan_sees_imports(tmp_path: Path) -> None:
    """The scanner itself finds plain, from- and nested imports (so the test above can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import rich.console\nfrom yaml import safe_load\ndef f():\n    import typer\n")
    assert {"rich.console", "yaml", "typer"} <= _imported_modules(probe)
