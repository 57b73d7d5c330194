from __future__ import annotations

from typing import Annotated

import typer

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors

ParentArg = Annotated[
    str,
    typer.Argument(
        help="parent model: run name, run folder, checkpoint file or export folder", show_default=False
    ),
]


def update_command(
    parent: ParentArg,
    spec_path: SpecArg,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    name: Annotated[str | None, typer.Option(help="name of the new run (default: the spec's name)")] = None,
    epochs: Annotated[int | None, typer.Option(help="update epochs (update.epochs)")] = None,
    max_steps: Annotated[int | None, typer.Option(help="optimizer steps instead of epochs")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate (update.lr; default train.lr)")] = None,
    replay: Annotated[float | None, typer.Option(help="share of older users' sequences mixed in")] = None,
    since: Annotated[float | None, typer.Option(help="timestamp where the new data starts")] = None,
) -> None:
    """Keep a model fresh: warm-start it on SPEC's newer log by raw item id (known items keep their rows)
    and finetune it briefly on what is new; the new run's run.json records its parent."""
    overrides = list(set_ or [])
    for key, value in (("name", name), ("update.epochs", epochs), ("update.max_steps", max_steps),
                       ("update.lr", lr), ("update.replay", replay), ("update.since", since)):
        if value is not None:
            overrides.append(f"{key}={value}")
    with user_errors():
        spec = load(spec_path, overrides, dry_run)
        from seqrec_cli.cli.finetune import TrainDisplay
        from seqrec_cli.pipelines.update import update

        display = TrainDisplay()
        try:
            result = update(parent, spec, events=display)
        finally:
            display.progress.stop()
            display.text.stop()
        if result.finetune.is_main:
            users = "every user" if result.since is None else f"users active since {result.since:g}"
            console.print(f"updated {parent} -> {result.run_dir} in {result.seconds:.1f}s on {users}; best "
                          f"valid {spec.train.monitor} {result.finetune.best_value:.4f} at epoch "
                          f"{result.finetune.best_epoch}")
