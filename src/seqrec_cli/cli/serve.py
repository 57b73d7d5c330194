from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqrec_cli.cli.common import console, user_errors

ExportArg = Annotated[Path, typer.Argument(help="folder written by `seqrec export`", show_default=False)]
HostOpt = Annotated[
    str, typer.Option("--host", help="interface to bind (keep 127.0.0.1 unless a proxy fronts it)")
]
PortOpt = Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port")]
BackendOpt = Annotated[
    str, typer.Option("--backend", help="torch, or onnx (needs an export with --format onnx)")
]
BatchOpt = Annotated[
    int, typer.Option("--max-batch", min=1, help="most histories per forward pass (1: no batching)")
]
WaitOpt = Annotated[
    float,
    typer.Option(
        "--max-wait-ms",
        min=0.0,
        help="longest wait for a batch to fill; 0: take what queued up during the previous pass",
    ),
]
StoreOpt = Annotated[Path, typer.Option("--store", help="SQLite file of user histories (created if missing)")]
CapOpt = Annotated[
    int | None, typer.Option("--history-cap", min=1, help="events kept per user (default: max_len)")
]
MaxHistOpt = Annotated[int, typer.Option("--max-history", min=1, help="longest history a request may send")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", min=1, help="compute threads (default: the library's)")
]
ExactOpt = Annotated[bool, typer.Option("--exact", help="ignore the export's approximate index; exact top-k")]


def serve_command(
    export_dir: ExportArg,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    backend: BackendOpt = "torch",
    max_batch: BatchOpt = 32,
    max_wait_ms: WaitOpt = 0.0,
    store: StoreOpt = Path("seqrec-histories.sqlite3"),
    history_cap: CapOpt = None,
    max_history: MaxHistOpt = 2000,
    threads: ThreadsOpt = None,
    exact: ExactOpt = False,
) -> None:
    """Serve an export over HTTP: /recommend, live user histories, /metrics, hot reload."""
    with user_errors():
        from seqrec_cli.errors import UserError

        if backend not in ("torch", "onnx"):
            raise UserError(f"unknown backend {backend!r}", where="--backend", fix="use torch or onnx")
        import uvicorn

        from seqrec_cli.serve.app import ServeConfig, create_app
        from seqrec_cli.serve.engine import ServedModel
        from seqrec_cli.serve.store import SQLiteStore

        config = ServeConfig(
            Path(export_dir), backend, threads, max_batch, max_wait_ms, max_history, not exact
        )
        model = ServedModel(config.export, backend, threads, config.use_ann)
        try:
            history = SQLiteStore(store, history_cap or model.max_len)
        except Exception as exc:  # sqlite3.Error, OSError: a path we cannot open as a database
            raise UserError(
                f"cannot open the history store: {exc}",
                where=str(store),
                fix="pass --store with a writable path to a SQLite file",
            ) from exc
        app = create_app(config, model, history)
        console.print(
            f"serving {model.name} ({model.fingerprint}, {backend}) on http://{host}:{port}",
            highlight=False,
        )
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
