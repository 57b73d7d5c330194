from __future__ import annotations

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, say, user_errors


def prepare_command(spec_path: SpecArg, set_: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Raw interactions -> prepared dataset (ids, sequences, item table, manifest). A no-op when done."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.prepare import prepare

        with console.status("preparing dataset..."):
            result = prepare(spec)
        fp = result.manifest["fingerprint"]
        verb = "already prepared" if result.reused else "prepared"
        say(f"{result.folder}: {fp['users']:,} users, {fp['items']:,} items, "
            f"{fp['interactions']:,} interactions (fingerprint {fp['hash'][:12]})", lead=verb)
