from __future__ import annotations

import shlex
import sys
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

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, say, user_errors
from seqrec_cli.cli.text_display import TextDisplay
from seqrec_cli.events import (
    EpochDone,
    Event,
    InitializedFrom,
    Note,
    PrepareReading,
    Resumed,
    StepDone,
    TrainDone,
    TrainStarted,
)

ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue the run from its last checkpoint")]
RestartOpt = Annotated[bool, typer.Option(
    "--restart", help="move an existing run folder aside (runs/<name>.replaced-<time>) and start over")]


def _resume_hint(spec_path) -> str:
    """The command that continues this run: the same arguments, with --resume instead of --restart."""
    args = [a for a in sys.argv[1:] if a not in ("--resume", "--restart")]
    if not args or args[0] != "finetune":
        args = ["finetune", str(spec_path)]
    return (f"run.json says 'interrupted'; continue from the last checkpoint with: "
            f"seqrec {shlex.join([*args, '--resume'])}")


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

    def __call__(self, event: Event) -> None:
        if self.text(event):
            return
        match event:
            case PrepareReading(source=source):
                console.print(f"preparing dataset from {source}")
            case TrainStarted():
                self.start(event)
            case InitializedFrom(path=path, mode=mode, fresh=fresh):
                what = "all weights"
                if mode == "transfer":
                    what = "transfer: sequence encoder + text adaptor" + (
                        "; id table starts at zero" if fresh else ""
                    )
                elif mode == "warm_start":
                    what = (
                        f"warm start by raw item id: {event.kept:,} items keep their rows, {event.new:,} new "
                        f"({event.new_init}), {event.dropped:,} dropped"
                    )
                console.print(f"initialised from {path} ({what})")
            case Resumed(epoch=epoch, step=step, batches_done=batches_done):
                where = (
                    f"in epoch {epoch + 1} at batch {batches_done}"
                    if batches_done
                    else f"after epoch {epoch}"
                )
                console.print(f"resuming {where} (optimizer step {step})")
            case StepDone(step=step, loss=loss):
                elapsed = time.perf_counter() - self.epoch_started
                rate = f"{step / max(elapsed, 1e-9):.1f} it/s"
                self.progress.update(self.task, completed=step, loss=loss, rate=rate, epoch=self.epoch)
            case EpochDone():
                self.epoch_done(event)
            case Note(text=text):
                say(text, lead="note:", style="yellow")
            case TrainDone():
                self.progress.stop()

    def start(self, event: TrainStarted) -> None:
        self.epoch = event.start_epoch
        console.print(
            f"run {event.run_dir}: {event.parameters:,} parameters "
            f"({event.trainable_parameters:,} trainable, train.method {event.method}), "
            f"{event.positions_per_epoch:,} target positions per epoch, {event.device} {event.precision}"
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=event.steps_per_epoch, epoch=self.epoch, loss=0.0, rate=""
        )
        self.epoch_started = time.perf_counter()

    def epoch_done(self, event: EpochDone) -> None:
        line = (f"epoch {event.epoch:>3}  loss {event.loss:.4f}  {event.positions_per_s:,.0f} pos/s  "
                f"{event.seconds:.1f}s")
        if event.valid is not None:
            mark = " *" if event.improved else ""
            line += f"  valid {event.monitor} {event.monitored:.4f}{mark}"
        self.progress.console.print(line)
        self.epoch = event.epoch + 1
        self.epoch_started = time.perf_counter()
        self.progress.reset(self.task, epoch=self.epoch, loss=event.loss, rate="")


def finetune_command(spec_path: SpecArg, set_: SetOpt = None, dry_run: DryRunOpt = False,
                     resume: ResumeOpt = False, restart: RestartOpt = False) -> None:
    """Train (or finetune) the model; early-stop on validation; keep the best checkpoint."""
    with user_errors(interrupted_hint=_resume_hint(spec_path)):
        spec = load(spec_path, set_, dry_run, for_training=True)
        from seqrec_cli.pipelines.finetune import finetune

        display = TrainDisplay()
        try:
            result = finetune(spec, resume=resume, events=display, restart=restart)
        finally:
            display.progress.stop()
            display.text.stop()
        if result.is_main:  # under torchrun only rank 0 reports
            say(f"({result.stop_reason}) after {result.epochs_run} epochs: best valid {spec.train.monitor} "
                f"{result.best_value:.4f} at epoch {result.best_epoch}; run folder {result.run_dir}",
                lead="done")
