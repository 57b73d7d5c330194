from __future__ import annotations

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, say, user_errors


def export_command(spec_path: SpecArg, set_: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Write the best model as safetensors + JSON with a sha256 manifest (loads without the spec)."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.export import export

        folder = export(spec)
        say(str(folder), lead="exported")
        console.print(f'  python -c "from seqrec_cli.artifacts import Recommender; '
                      f"print(Recommender.load('{folder}').recommend(['<item id>', '<item id>'], k=10))\"")
