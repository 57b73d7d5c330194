"""Fault injection: every case runs a real `seqrec` process against a copy of a small finished
"world" (data, prepared dataset, trained run, export), after damaging it the way a careless or
unlucky user would. Each case asserts the exit code, that the message names the file, key or line
to fix, and that nothing the user had was changed (sha256 of every file before and after).
The numbers in the case ids are the defects of issue 16 each case backs (see docs/reliability.md)."""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine_fixtures import child_env, seqrec_command

NAME = "t"
SPEC = f"""\
name: {NAME}
data:
  path: data/log.csv
  format: table
  columns: {{user: user_id, item: item_id, time: timestamp}}
model: {{encoder: sasrec, max_len: 10, hidden: 8, layers: 1, heads: 1}}
train: {{epochs: 2, batch_size: 16, patience: 5, monitor: NDCG@5, seed: 1}}
eval: {{ks: [5], bootstrap: 0}}
runtime: {{device: cpu, precision: fp32, threads: 1, output_root: out}}
"""
LONG = ["--set", "train.epochs=400", "--set", "train.checkpoint_every_steps=1", "--set", "train.patience=400"]


def log_rows(users: int = 40, per_user: int = 12, items: int = 30) -> list[str]:
    rows, stamp = ["user_id,item_id,timestamp"], 1_000_000
    for u in range(users):
        for j in range(per_user):
            stamp += 7
            rows.append(f"u{u},i{(u * 7 + j * 3) % items},{stamp}")
    return rows


def run(cwd: Path, *args: str, preexec: Callable[[], None] | None = None, timeout: float = 300,
        umask: int = 0o022) -> subprocess.CompletedProcess:
    def before_exec() -> None:
        os.umask(umask)
        if preexec:
            preexec()

    env = child_env()
    env.pop("SEQREC_DATA_ROOT", None)  # data.path is relative to cwd, not to a data root (CI sets one)
    return subprocess.run(
        [*seqrec_command(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=before_exec,
    )


def tree(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (lock files excluded: they come and go by design)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    (root / "data").mkdir()
    (root / "data/log.csv").write_text("\n".join(log_rows()) + "\n")
    (root / "spec.yaml").write_text(SPEC)
    for args in (("finetune", "spec.yaml"), ("export", "spec.yaml")):
        done = run(root, *args)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def place(world: Path, tmp_path: Path) -> Path:
    """A private copy of the world for one case."""
    copy = tmp_path / "w"
    shutil.copytree(world, copy)
    return copy


def prepared(place: Path) -> Path:
    (folder,) = [p for p in (place / "out/prepared").iterdir() if not p.name.startswith(".")]
    return folder


def export_dir(place: Path) -> Path:
    return place / "out/exports" / NAME


def flip_byte(path: Path, at: int = -40) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def data_file(name: str, content: bytes) -> Callable[[Path], list[str]]:
    def setup(place: Path) -> list[str]:
        (place / "data" / name).write_bytes(content)
        return ["prepare", "spec.yaml", "--set", f"data.path=data/{name}"]
    return setup


def _plain() -> bytes:
    return ("\n".join(log_rows()) + "\n").encode()


def _zip(crc_damage: bool) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("log.csv", _plain())
    data = bytearray(buffer.getvalue())
    if crc_damage:
        data[60] ^= 0xFF  # inside the deflated member: its CRC no longer matches
    return bytes(data)


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list[str]]  # damages the copy, returns the seqrec arguments
    code: int
    mentions: list[str]  # each must appear in the output (file, key or line)
    creates: bool = False  # the command may add files (never change or remove any)
    absent: list[str] = field(default_factory=list)  # must not appear (e.g. a traceback)


def _resume_without_last(place: Path) -> list[str]:
    for name in ("last.pt", "last.pt.sha256"):
        (place / "out/runs" / NAME / "checkpoints" / name).unlink()
    return ["finetune", "spec.yaml", "--resume", "--set", "train.epochs=3"]


def _unsigned(target: str, args: list[str]) -> Callable[[Path], list[str]]:
    def setup(place: Path) -> list[str]:
        checkpoint = place / "out/runs" / NAME / "checkpoints" / target
        (checkpoint.parent / f"{target}.sha256").unlink()
        flip_byte(checkpoint)
        return args
    return setup


def _edit(relative: Callable[[Path], Path], change: Callable[[Path], None], args: list[str]):
    def setup(place: Path) -> list[str]:
        change(relative(place))
        return args
    return setup


def _write(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _drop_files_record(path: Path) -> None:
    manifest = json.loads(path.read_text())
    manifest["fingerprint"].pop("files")
    path.write_text(json.dumps(manifest))


def _spec_text(text: str) -> Callable[[Path], list[str]]:
    def setup(place: Path) -> list[str]:
        (place / "bad.yaml").write_text(text)
        return ["finetune", "bad.yaml", "--dry-run"]
    return setup


def _malformed_line_100(place: Path) -> list[str]:
    rows = log_rows()
    rows[99] = "u8,i3,not-a-time"  # line 100 of the file
    (place / "data/malformed.csv").write_text("\n".join(rows) + "\n")
    return ["prepare", "spec.yaml", "--set", "data.path=data/malformed.csv"]


def _nan_time(place: Path) -> list[str]:
    rows = log_rows()
    rows[4] = "u0,i5,nan"  # line 5
    (place / "data/nan.csv").write_text("\n".join(rows) + "\n")
    return ["prepare", "spec.yaml", "--set", "data.path=data/nan.csv"]


def _output_root_is_a_file(place: Path) -> list[str]:
    (place / "occupied").write_text("a file, not a folder\n")
    return ["finetune", "spec.yaml", "--set", "runtime.output_root=occupied/out"]


def _checkpoints_is_a_file(place: Path) -> list[str]:
    run_dir = place / "out/runs" / NAME
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "checkpoints").write_text("not a folder\n")
    return ["evaluate", "spec.yaml"]


def _disk_full_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, no signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def _disk_full(place: Path) -> list[str]:
    return ["finetune", "spec.yaml", "--set", "name=full"]


EXPORT_ARGS = ["recommend", "out/exports/t", "--history", "i1,i2"]
CASES = [
    # 1: a folder with results is never restarted silently; --resume of nothing is refused
    Case("1-resume-without-last-pt", _resume_without_last, 2, ["last.pt", "--restart", "metrics.jsonl"]),
    Case(
        "1-resume-of-no-run",
        lambda p: ["finetune", "spec.yaml", "--resume", "--set", "name=never"],
        2,
        ["runs/never", "drop --resume"],
    ),
    Case(
        "1-no-flag-on-existing-run", lambda p: ["finetune", "spec.yaml"], 2, ["already exists", "--restart"]
    ),
    # 3: a checkpoint without its digest is refused, wherever it is loaded
    Case(
        "3-unsigned-best-evaluate",
        _unsigned("best.pt", ["evaluate", "spec.yaml"]),
        2,
        ["best.pt", "no digest file", "seqrec trust"],
    ),
    Case(
        "3-unsigned-best-export",
        _unsigned("best.pt", ["export", "spec.yaml", "--set", "export.dir=out/e2"]),
        2,
        ["best.pt", "no digest file"],
    ),
    Case(
        "3-unsigned-last-resume",
        _unsigned("last.pt", ["finetune", "spec.yaml", "--resume", "--set", "train.epochs=3"]),
        2,
        ["last.pt", "no digest"],
    ),
    # 4: damaged compressed input: one error path, naming the file
    Case(
        "4-truncated-gz", data_file("log.csv.gz", gzip.compress(_plain())[:300]), 2, ["log.csv.gz", "gzip -t"]
    ),
    Case(
        "4-bad-crc-gz",
        data_file("log.csv.gz", (lambda d: d[:-8] + bytes([d[-8] ^ 0xFF]) + d[-7:])(gzip.compress(_plain()))),
        2,
        ["log.csv.gz", "CRC"],
    ),
    Case("4-not-gzip", data_file("log.csv.gz", _plain()), 2, ["log.csv.gz", "Not a gzipped file"]),
    Case(
        "4-truncated-xz", data_file("log.csv.xz", lzma.compress(_plain())[:200]), 2, ["log.csv.xz", "xz -t"]
    ),
    Case("4-bad-crc-zip", data_file("log.zip", _zip(crc_damage=True)), 2, ["log.zip[log.csv]", "unzip -t"]),
    Case("4-not-zip", data_file("log.zip", _plain()), 2, ["log.zip", "not a zip file"]),
    # 5: locations print literally (no emoji for :100:, no markup for [..])
    Case("5-file-line-literal", _malformed_line_100, 2, ["malformed.csv:100:", "not-a-time"], absent=["💯"]),
    # 7: fixable problems are exit 2 naming the file, never a traceback
    Case(
        "7-export-manifest-corrupt",
        _edit(lambda p: export_dir(p) / "manifest.json", _write("{not json"), EXPORT_ARGS),
        2,
        ["manifest.json", "not valid JSON"],
    ),
    Case(
        "7-export-manifest-incomplete",
        _edit(
            lambda p: export_dir(p) / "manifest.json",
            _write('{"format": "seqrec-export", "version": 1}'),
            EXPORT_ARGS,
        ),
        2,
        ["manifest.json", "sha256"],
    ),
    Case(
        "7-export-unlisted-file",
        _edit(lambda p: export_dir(p) / "item_text.safetensors", _write("x"), EXPORT_ARGS),
        2,
        ["item_text.safetensors", "not listed"],
    ),
    Case(
        "7-prepared-manifest-corrupt",
        _edit(lambda p: prepared(p) / "manifest.json", _write("[1, 2"), ["evaluate", "spec.yaml"]),
        2,
        ["manifest.json", "seqrec prepare"],
    ),
    Case(
        "7-prepared-item-ids-missing",
        _edit(lambda p: prepared(p) / "item_ids.json", Path.unlink, ["evaluate", "spec.yaml"]),
        2,
        ["item_ids.json", "missing"],
    ),
    Case("7-output-root-is-a-file", _output_root_is_a_file, 2, ["occupied", "a file stands where a folder"]),
    Case("7-checkpoints-is-a-file", _checkpoints_is_a_file, 2, ["checkpoints"]),
    Case("7-disk-full-on-write", _disk_full, 2, ["runs/full", "file-size limit"], creates=True),
    # 8: no silent acceptance
    Case("8-nan-timestamp", _nan_time, 2, ["nan.csv:5", "finite"]),
    Case(
        "8-duplicate-yaml-key",
        _spec_text(SPEC + "train: {epochs: 9}\n"),
        2,
        ["bad.yaml", "train (line 10)", "duplicate key"],
    ),
    Case(
        "8-bool-as-number",
        _spec_text(SPEC.replace("epochs: 2", "epochs: true")),
        2,
        ["train.epochs", "expected a number"],
    ),
    Case(
        "8-dry-run-monitor",
        _spec_text(SPEC.replace("monitor: NDCG@5", "monitor: NDCG@10")),
        2,
        ["train.monitor", "NDCG@10"],
    ),
    Case("8-empty-history", lambda p: ["recommend", "out/exports/t", "--history", ""], 2, ["--history"]),
    Case(
        "8-unknown-history-ids",
        lambda p: ["recommend", "out/exports/t", "--history", "i1,zzz-unknown"],
        0,
        ["zzz-unknown", "not in this model's catalogue"],
    ),
    # 9: every prepared file is in the fingerprint
    Case(
        "9-timestamps-altered",
        _edit(lambda p: prepared(p) / "timestamps.npy", flip_byte, ["evaluate", "spec.yaml"]),
        2,
        ["timestamps.npy", "modified"],
    ),
    Case(
        "9-items-jsonl-altered",
        _edit(
            lambda p: prepared(p) / "items.jsonl", _write('{"item_id": "i9"}\n'), ["evaluate", "spec.yaml"]
        ),
        2,
        ["items.jsonl", "modified"],
    ),
    Case(
        "9-format-1-dataset",
        _edit(lambda p: prepared(p) / "manifest.json", _drop_files_record, ["evaluate", "spec.yaml"]),
        2,
        ["manifest.json", "format 1", "seqrec prepare"],
    ),
    # export tampering (the README's promise: altered files are refused)
    Case(
        "export-weights-altered",
        _edit(lambda p: export_dir(p) / "model.safetensors", flip_byte, EXPORT_ARGS),
        2,
        ["model.safetensors", "sha256"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, place: Path) -> None:
    args = case.setup(place)
    before = tree(place)
    done = run(place, *args, preexec=_disk_full_limit if case.id == "7-disk-full-on-write" else None)
    output = done.stdout + done.stderr
    assert done.returncode == case.code, output
    assert "Traceback" not in output, output
    for text in case.mentions:
        assert text in flat(output), f"{text!r} not in: {output}"
    for text in case.absent:
        assert text not in output, output
    if case.code == 2:
        assert "error:" in output and "fix:" in output, output
    after = tree(place)
    if case.creates:
        assert {k: v for k, v in after.items() if k in before} == before
    else:
        assert after == before
    assert not [p for p in place.rglob("*") if ".tmp-" in p.name], "a temp file was left behind"


def test_read_only_output_folder_is_exit_2(place: Path) -> None:
    runs = place / "out/runs"
    runs.chmod(0o555)
    try:
        probe = runs / "probe"
        try:
            probe.write_text("x")
            probe.unlink()
            pytest.skip(
                "running as root (or on a filesystem that ignores modes): a read-only folder is writable"
            )
        except PermissionError:
            pass
        before = tree(place)
        done = run(place, "finetune", "spec.yaml", "--set", "name=other")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "runs" in done.stderr and "permission" in done.stderr.lower()
        assert tree(place) == before
    finally:
        runs.chmod(0o755)


def test_folder_as_data_path_works(place: Path) -> None:  # defect 6
    (place / "folder").mkdir()
    shutil.copy(place / "data/log.csv", place / "folder/log.csv")
    done = run(place, "prepare", "spec.yaml", "--set", "data.path=folder")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prepared" in done.stdout


def test_restart_moves_the_old_run_aside(place: Path) -> None:  # defect 1: --restart never deletes
    old = tree(place / "out/runs" / NAME)
    done = run(place, "finetune", "spec.yaml", "--restart")
    assert done.returncode == 0, done.stdout + done.stderr
    (moved,) = (place / "out/runs").glob(f"{NAME}.replaced-*")
    assert tree(moved) == old and str(moved.relative_to(place)) in flat(done.stdout)
    assert (place / "out/runs" / NAME / "checkpoints/best.pt").is_file()


def test_trust_vouches_for_an_unsigned_checkpoint(place: Path) -> None:  # defect 3: the fix the message gives
    best = place / "out/runs" / NAME / "checkpoints/best.pt"
    best.with_name("best.pt.sha256").unlink()
    assert run(place, "evaluate", "spec.yaml").returncode == 2
    assert run(place, "trust", str(best)).returncode == 0
    done = run(place, "evaluate", "spec.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.02)


def popen(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*seqrec_command(), *args], cwd=cwd, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_run_lock_refuses_a_second_process_and_reports_a_dead_holder(place: Path) -> None:  # defect 2
    first = popen(place, "finetune", "spec.yaml", "--set", "name=busy", *LONG)
    try:
        run_dir = place / "out/runs/busy"
        wait_for(run_dir / "checkpoints/last.pt.sha256", first)
        second = run(place, "finetune", "spec.yaml", "--set", "name=busy", "--resume", *LONG)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {first.pid}" in flat(second.stderr) and "in use by another seqrec" in second.stderr
        assert "runs/busy" in second.stderr
        first.send_signal(signal.SIGKILL)  # dies holding the lock: the file stays, the flock goes
        first.wait(timeout=60)
        lock = place / "out/runs/.busy.lock"
        assert json.loads(lock.read_text())["pid"] == first.pid
        third = run(
            place, "finetune", "spec.yaml", "--set", "name=busy", "--resume", "--set", "train.epochs=2"
        )
        assert third.returncode == 0, third.stdout + third.stderr
        assert f"pid {first.pid} on {socket.gethostname()}" in flat(third.stdout)
        assert "ended without releasing" in flat(third.stdout)
        assert not lock.exists()
        assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name]  # killed writes' temps are swept
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_ctrl_c_marks_the_run_interrupted_and_says_how_to_resume(place: Path) -> None:  # defect 10
    proc = popen(place, "finetune", "spec.yaml", "--set", "name=stopped", *LONG)
    try:
        wait_for(place / "out/runs/stopped/checkpoints/last.pt.sha256", proc)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "--resume" in output and "Traceback" not in output
    info = json.loads((place / "out/runs/stopped/run.json").read_text())
    assert info["status"] == "interrupted"
    resumed = run(
        place, "finetune", "spec.yaml", "--set", "name=stopped", "--resume", "--set", "train.epochs=2"
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_files_follow_the_umask(place: Path) -> None:  # defect 10: not 0600
    done = run(place, "finetune", "spec.yaml", "--set", "name=modes", umask=0o022)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(place, "export", "spec.yaml", "--set", "name=modes", umask=0o022)
    assert done.returncode == 0, done.stdout + done.stderr
    files = [*(place / "out/runs/modes").rglob("*"), *(place / "out/exports/modes").rglob("*")]
    assert files
    for path in files:
        want = 0o755 if path.is_dir() else 0o644
        assert path.stat().st_mode & 0o777 == want, (path, oct(path.stat().st_mode))
    assert (place / "out/exports/modes").stat().st_mode & 0o777 == 0o755


def test_stale_temp_files_of_killed_writers_are_swept(place: Path) -> None:  # defect 10
    from seqrec_cli.atomic import HOST

    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    checkpoints = place / "out/runs" / NAME / "checkpoints"
    (checkpoints / f".last.pt.tmp-{dead}-{HOST}-abc.tmp").write_bytes(b"half")
    (checkpoints / ".best.pt.abcdef.tmp").write_bytes(b"half (older naming)")
    half = place / "out/prepared" / f".other.tmp-{dead}-{HOST}-xyz"
    half.mkdir()
    (half / "sequences.npy").write_bytes(b"half")
    done = run(place, "prepare", "spec.yaml", "--set", "data.user_core=2")  # prepare sweeps prepared/
    assert done.returncode == 0, done.stdout + done.stderr
    assert not half.exists()
    done = run(
        place, "finetune", "spec.yaml", "--resume", "--set", "train.epochs=3"
    )  # the lock holder sweeps
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(checkpoints.glob(".*"))


class FakeClock:
    """time for core/train.py: perf_counter advances 100 s per call, so epoch seconds are exact."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 100.0
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


def test_extending_max_steps_after_a_mid_epoch_end_writes_each_epoch_once(
    tmp_path: Path, monkeypatch
) -> None:
    """Defect 10: the part-epoch record is replaced by the whole epoch, whose seconds and positions
    count both sessions."""
    from seqrec_cli.core import train as train_module
    from seqrec_cli.pipelines.finetune import finetune
    from seqrec_cli.spec.loader import load_spec

    (tmp_path / "data").mkdir()
    (tmp_path / "data/log.csv").write_text("\n".join(log_rows()) + "\n")
    (tmp_path / "spec.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQREC_DATA_ROOT", raising=False)  # data.path is relative to cwd here
    monkeypatch.setattr(train_module, "time", FakeClock())

    def records(name: str) -> list[dict]:
        return [
            json.loads(line)
            for line in (tmp_path / "out/runs" / name / "metrics.jsonl").read_text().splitlines()
        ]

    whole = finetune(load_spec("spec.yaml", ["name=whole", "train.max_steps=9"]))
    per_epoch = 3  # 40 users in batches of 16
    assert whole.epochs_run == 9 // per_epoch
    finetune(load_spec("spec.yaml", ["name=cut", "train.max_steps=4"]))  # ends one step into epoch 2
    cut = records("cut")
    assert [r["epoch"] for r in cut] == [1, 2] and cut[1]["positions"] < cut[0]["positions"]
    finetune(load_spec("spec.yaml", ["name=cut", "train.max_steps=9"]), resume=True)
    resumed = records("cut")
    assert [r["epoch"] for r in resumed] == [1, 2, 3]  # epoch 2 once, not twice
    assert [r["positions"] for r in resumed] == [r["positions"] for r in records("whole")]
    assert resumed[1]["seconds"] > cut[1]["seconds"]  # the whole epoch's time, both sessions
    assert resumed[1]["positions_per_s"] == round(resumed[1]["positions"] / resumed[1]["seconds"], 1)


@pytest.mark.parametrize("writes", [1, 7])
def test_kill_9_during_writes_leaves_every_file_loadable(place: Path, writes: int) -> None:
    """SIGKILL after the `writes`-th checkpoint write began (checkpoints every step, so the kill lands
    among writes): each checkpoint still matches its digest and every complete metrics line parses."""
    from seqrec_cli.core.checkpoint import load_checkpoint

    proc = popen(place, "finetune", "spec.yaml", "--set", "name=killed", *LONG)
    sidecar = place / "out/runs/killed/checkpoints/last.pt.sha256"
    try:
        seen, last = 0, None
        deadline = time.time() + 180
        while seen < writes and time.time() < deadline and proc.poll() is None:
            try:
                stamp = sidecar.stat().st_mtime_ns
            except FileNotFoundError:
                stamp = None
            if stamp is not None and stamp != last:
                seen, last = seen + 1, stamp
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    checkpoints = place / "out/runs/killed/checkpoints"
    for name in ("last.pt", "best.pt"):
        if (checkpoints / name).exists():
            assert isinstance(load_checkpoint(checkpoints / name), dict)
    metrics = place / "out/runs/killed/metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().split("\n")[:-1]:  # complete lines (a kill may cut the one being
            json.loads(line)  # appended; --resume drops it, as test_kill_resume checks)
