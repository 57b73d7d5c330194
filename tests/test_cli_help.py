"""--help never labels a flag with a value type (typer 0.29 printed `<bool>` on every flag)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from seqrec_cli.cli.app import app

COMMANDS = [name for name in (c.name for c in app.registered_commands) if name]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_type_on_flags(command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


def test_options_with_values_keep_their_type():
    result = CliRunner().invoke(app, ["recommend", "--help"], terminal_width=120)
    assert "<int" in result.output  # -k still says what it takes
    finetune = CliRunner().invoke(app, ["finetune", "--help"], terminal_width=120).output
    assert "KEY=VALUE" in finetune and "SPEC" in finetune
