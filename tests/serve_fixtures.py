"""A tiny trained export (with ONNX) and a real `seqrec serve` subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from seqrec_cli.cli.app import app

USERS, ITEMS = 40, 20
SRC = str(Path(__file__).resolve().parents[1] / "src")


def raw_item(index: int) -> str:
    return str(9000 + 3 * index)  # raw ids that are not the dense indices


def ok(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def build_export(folder: Path, name: str = "serve", steps: int = 30, seed: int = 1) -> Path:
    """prepare -> finetune (a few steps) -> evaluate test -> export --format onnx, in-process."""
    data = folder / "interactions.txt"
    lines = []
    for u in range(1, USERS + 1):
        start = (3 * u) % ITEMS
        lines += [f"user{u} {raw_item((start + j) % ITEMS)}" for j in range(6 + u % 5)]
    data.write_text("\n".join(lines) + "\n")
    spec = folder / f"{name}.yaml"
    spec.write_text(f"""\
name: {name}
data: {{path: {data}, format: user_item_lines}}
model: {{max_len: 8, hidden: 16, layers: 1, heads: 2, dropout: 0.1}}
train: {{max_steps: {steps}, batch_size: 16, lr: 0.01, patience: 50, monitor: NDCG@10, seed: {seed}}}
eval: {{ks: [5, 10]}}
runtime: {{device: cpu, precision: fp32, threads: 1, output_root: {folder / "out"}}}
""")
    for command in (
        ["prepare"],
        ["finetune"],
        ["evaluate", "--split", "test"],
        ["export", "--format", "onnx"],
    ):
        ok(command[0], spec, *command[1:])
    return folder / "out" / "exports" / name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log: Path

    def call(
        self, method: str, path: str, body=None, raw: bytes | None = None, headers=None
    ) -> tuple[int, dict]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as err:
            text, status = err.read().decode(), err.code
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, {"text": text}

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def start_server(export: Path, store: Path, log: Path, *extra: str, env: dict | None = None) -> Server:
    port = free_port()
    environ = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    handle = open(log, "ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqrec_cli",
            "serve",
            str(export),
            "--port",
            str(port),
            "--store",
            str(store),
            "--threads",
            "1",
            *extra,
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=environ,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
        try:
            if server.call("GET", "/readyz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"server not ready in 90 s: {log.read_text()}")
