from __future__ import annotations

from typing import Annotated

import typer

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, say, user_errors

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", help="safetensors, or onnx: also write model.onnx for `seqrec serve --backend onnx`"
    ),
]
AnnOpt = Annotated[
    str,
    typer.Option(
        "--ann", help="approximate top-k index: auto (from --ann-min-items items on), ivf (always) or none"
    ),
]
AnnMinOpt = Annotated[
    int, typer.Option("--ann-min-items", min=1, help="catalogue size from which auto builds it")
]


def export_command(
    spec_path: SpecArg,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    format_: FormatOpt = "safetensors",
    ann: AnnOpt = "auto",
    ann_min_items: AnnMinOpt = 100_000,
) -> None:
    """Write the best model as safetensors + JSON with a sha256 manifest and a model card (no spec needed)."""
    with user_errors():
        from seqrec_cli.errors import UserError

        if format_ not in ("safetensors", "onnx"):
            raise UserError(f"unknown format {format_!r}", where="--format", fix="use safetensors or onnx")
        if ann not in ("auto", "none", "ivf"):
            raise UserError(f"unknown index {ann!r}", where="--ann", fix="use auto, none or ivf")
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.export import ExportOptions, export

        folder = export(spec, options=ExportOptions(format=format_, ann=ann, ann_min_items=ann_min_items))
        say(str(folder), lead="exported")
        console.print(f"  seqrec serve {folder}   # HTTP service; model card: {folder}/README.md")
