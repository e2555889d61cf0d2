"""The `imagenet2012-local` command: tools that work on a prepared dataset."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Subcommand -> (module with `add_arguments(parser)` and `run(args) -> int`, help).
_COMMANDS = {
    'export-tpu': (
        'imagenet2012_local.tpu_export',
        'Write the train-%05d-of-01024 / validation-%05d-of-00128 TFRecords that'
        ' TPU, Intel and MLPerf ResNet input pipelines read.',
    ),
    'report': (
        'imagenet2012_local.report.command',
        'Write contact sheets, charts and a summary of a prepared dataset.',
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the `imagenet2012-local` console script."""
  parser = argparse.ArgumentParser(
      prog='imagenet2012-local',
      description='Tools around the imagenet2012_local TFDS dataset.',
  )
  commands = parser.add_subparsers(dest='command', required=True)
  for name, (module_name, description) in _COMMANDS.items():
    module = importlib.import_module(module_name)
    command = commands.add_parser(name, help=description, description=description)
    module.add_arguments(command)
    command.set_defaults(run=module.run)
  args = parser.parse_args(argv)
  return args.run(args)


if __name__ == '__main__':
  raise SystemExit(main())
