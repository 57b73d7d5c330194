from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors
from seqrec_cli.cli.text_display import TextDisplay

ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue the run from its last checkpoint")]


class TrainDisplay:
    """Renders finetune events: a per-epoch progress bar with loss, throughput and ETA."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True,
        )
        self.task = None
        self.epoch = 0
        self.epoch_started = 0.0
        self.text = TextDisplay()

    def __call__(self, kind: str, info: dict) -> None:
        if self.text(kind, info):
            return
        if kind == "prepare.reading":
            console.print(f"preparing dataset from {info['source']}")
        elif kind == "finetune.start":
            self.epoch = info["start_epoch"]
            console.print(f"run [bold]{info['run_dir']}[/]: {info['parameters']:,} parameters "
                          f"({info['trainable_parameters']:,} trainable, train.method {info['method']}), "
                          f"{info['train_positions_per_epoch']:,} target positions per epoch, "
                          f"{info['runtime']['device']} {info['runtime']['precision']}")
            self.progress.start()
            self.task = self.progress.add_task("train", total=info["steps_per_epoch"], epoch=self.epoch, loss=0.0, rate="")
            self.epoch_started = time.perf_counter()
        elif kind == "finetune.init_from":
            mode = "all weights"
            if info["mode"] == "transfer":
                mode = "transfer: sequence encoder + text adaptor" + ("; id table starts at zero" if info["fresh"] else "")
            elif info["mode"] == "warm_start":
                mode = (f"warm start by raw item id: {info['kept']:,} items keep their rows, {info['new']:,} new "
                        f"({info['new_init']}), {info['dropped']:,} dropped")
            console.print(f"initialised from {info['path']} ({mode})")
        elif kind == "finetune.resumed":
            where = (f"in epoch {info['epoch'] + 1} at batch {info['batches_done']}" if info["batches_done"]
                     else f"after epoch {info['epoch']}")
            console.print(f"resuming {where} (optimizer step {info['step']})")
        elif kind == "finetune.step":
            elapsed = time.perf_counter() - self.epoch_started
            rate = f"{info['step'] / max(elapsed, 1e-9):.1f} it/s"
            self.progress.update(self.task, completed=info["step"], loss=info["loss"], rate=rate, epoch=self.epoch)
        elif kind == "finetune.epoch":
            line = (f"epoch {info['epoch']:>3}  loss {info['loss']:.4f}  {info['positions_per_s']:,.0f} pos/s  "
                    f"{info['seconds']:.1f}s")
            if "valid" in info:
                mark = " *" if info["improved"] else ""
                line += f"  valid {info['monitor']} {info['valid'][info['monitor']]:.4f}{mark}"
            self.progress.console.print(line)
            self.epoch = info["epoch"] + 1
            self.epoch_started = time.perf_counter()
            self.progress.reset(self.task, epoch=self.epoch, loss=info["loss"], rate="")
        elif kind == "finetune.done":
            self.progress.stop()


def finetune_command(spec_path: SpecArg, set_: SetOpt = None, dry_run: DryRunOpt = False,
                     resume: ResumeOpt = False) -> None:
    """Train (or finetune) the model; early-stop on validation; keep the best checkpoint."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.finetune import finetune

        display = TrainDisplay()
        try:
            result = finetune(spec, resume=resume, events=display)
        finally:
            display.progress.stop()
            display.text.stop()
        if result.is_main:  # under torchrun only rank 0 reports
            console.print(f"[green]done[/] ({result.stop_reason}) after {result.epochs_run} epochs: best valid "
                          f"{spec.train.monitor} {result.best_value:.4f} at epoch {result.best_epoch}; run folder "
                          f"{result.run_dir}")
