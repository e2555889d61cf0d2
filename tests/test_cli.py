"""`imagenet2012-local`: a subcommand's module is imported for it alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagenet2012_local.commands import cli

_ROOT = Path(__file__).resolve().parent.parent
_CLASSIC = 'imagenet2012_local.commands.classic_build'
_REPORT = 'imagenet2012_local.report.command'
_EXPORT = 'imagenet2012_local.commands.tpu_export'
_COMMAND_MODULES = (_CLASSIC, _REPORT, _EXPORT)
_HEAVY = ('matplotlib', 'tensorflow', *_COMMAND_MODULES)


def _help_in_fresh_python(argv: list[str]) -> tuple[str, set[str]]:
  """Runs `imagenet2012-local *argv` in a new Python, as the console script.

  Returns what it printed, and which of the _HEAVY modules it imported.
  """
  code = textwrap.dedent(f"""
      import json, sys
      from imagenet2012_local.commands import cli
      try:
        cli.main({argv!r})
      except SystemExit as exit:
        assert exit.code == 0, exit.code
      print(json.dumps([m for m in {_HEAVY!r} if m in sys.modules]))
  """)
  # From the repository root, so that this checkout's package is imported.
  done = subprocess.run(
      [sys.executable, '-c', code],
      cwd=_ROOT, capture_output=True, text=True, check=True,
  )
  help_text, _, loaded = done.stdout.rstrip().rpartition('\n')
  return help_text, set(json.loads(loaded))


def test_top_level_help_imports_no_subcommand():
  help_text, loaded = _help_in_fresh_python(['--help'])
  assert loaded == set()
  assert 'export-tpu' in help_text and 'report' in help_text
  assert 'build-classic' in help_text
  assert 'train-%05d-of-01024' in help_text


@pytest.mark.parametrize(
    'command, option, module',
    [
        ('build-classic', '--manual_dir', _CLASSIC),
        ('report', '--short_fraction', _REPORT),
        ('export-tpu', '--output_dir', _EXPORT),
    ],
)
def test_subcommand_help_imports_that_subcommand_only(command, option, module):
  help_text, loaded = _help_in_fresh_python([command, '--help'])
  assert help_text.startswith(f'usage: imagenet2012-local {command} [-h]')
  assert option in help_text
  others = set(_COMMAND_MODULES) - {module}
  assert module in loaded and not loaded & others, loaded


def test_unknown_subcommand_is_an_error(capsys):
  with pytest.raises(SystemExit) as exit:
    cli.main(['no-such-command'])
  assert exit.value.code == 2
  assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
