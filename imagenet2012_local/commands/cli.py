"""The `imagenet2012-local` command: the classic-layout build, and tools that
work on a prepared dataset.

A subcommand's module, with its TensorFlow or matplotlib, is imported only when
that subcommand is parsed, so `imagenet2012-local --help` starts at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence

from imagenet2012_local import errors

_TF_LOG_LEVEL_ENV_VAR = 'TF_CPP_MIN_LOG_LEVEL'

# Subcommand -> (module with `add_arguments(parser)` and `run(args) -> int`, help).
# A `run` that raises our error (two lines: what is wrong, what to do) exits
# with 1 and the message, printed by `main`.
_COMMANDS = {
    'build-classic': (
        'imagenet2012_local.commands.classic_build',
        'Write the train-%05d-of-01024 / validation-%05d-of-00128 TFRecords'
        ' (the classic ImageNet layout that TPU, Intel, MLPerf and DALI ResNet'
        ' pipelines read: the old conversion script\'s keys, 1-based labels)'
        ' straight from the downloaded archives, in one pass.',
    ),
    'build-wds': (
        'imagenet2012_local.commands.wds_build',
        'Write WebDataset shards, imagenet1k-train-{0000..1023}.tar /'
        ' imagenet1k-validation-{0000..0063}.tar (timm\'s imagenet-1k-wds'
        ' layout, read by timm, OpenCLIP and HF datasets: .jpg, .cls, .json'
        ' per image) straight from the downloaded archives, in one pass.',
    ),
    'export-tpu': (
        'imagenet2012_local.commands.tpu_export',
        'Write the train-%05d-of-01024 / validation-%05d-of-00128 TFRecords that'
        ' TPU, Intel and MLPerf ResNet input pipelines read, from a prepared'
        ' TFDS build.',
    ),
    'report': (
        'imagenet2012_local.report.command',
        'Write contact sheets, charts and a summary of a prepared dataset.',
    ),
}


class _CommandParser(argparse.ArgumentParser):
  """A subcommand's parser that takes its options from its module when used.

  argparse hands the arguments after a subcommand's name to that subcommand's
  parser alone, through `parse_known_args`: the other modules stay unimported.
  """

  def __init__(self, *, module_name: str, **kwargs):
    super().__init__(**kwargs)
    self._module_name = module_name
    self._loaded = False

  def parse_known_args(
      self,
      args: Sequence[str] | None = None,
      namespace: argparse.Namespace | None = None,
  ) -> tuple[argparse.Namespace, list[str]]:
    """Adds the module's options and `run` on first use, then parses."""
    if not self._loaded:
      module = importlib.import_module(self._module_name)
      module.add_arguments(self)
      self.set_defaults(run=module.run)
      self._loaded = True
    return super().parse_known_args(args, namespace)


def add_classic_layout_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the flags of the classic layout's shape: files per split, and
  whether DALI indexes go with them (`build-classic`, `export-tpu`)."""
  # Imported here: the top-level parser stays free of the writers' imports.
  from imagenet2012_local.layouts import classic_layout  # pylint: disable=g-import-not-at-top

  add_shard_count_arguments(parser, classic_layout.DEFAULT_SHARDS)
  parser.add_argument(
      '--dali_index',
      action='store_true',
      help='Also write NVIDIA DALI index files, into'
      f' <output_dir>/{classic_layout.DALI_INDEX_DIR}/.',
  )


def classic_shard_counts(args: argparse.Namespace) -> dict[str, int]:
  """{split: files} from the flags of `add_classic_layout_arguments`."""
  from imagenet2012_local.layouts import classic_layout  # pylint: disable=g-import-not-at-top

  return shard_counts(args, classic_layout.DEFAULT_SHARDS)


def add_shard_count_arguments(
    parser: argparse.ArgumentParser, defaults: Mapping[str, int]
) -> None:
  """Adds `--<split>_shards` for each split of `defaults` ({split: files})."""
  for split, shards in defaults.items():
    parser.add_argument(
        f'--{split}_shards',
        type=_positive_int,
        default=shards,
        help=f'Number of {split} files (default: %(default)s).',
    )


def shard_counts(
    args: argparse.Namespace, defaults: Mapping[str, int]
) -> dict[str, int]:
  """{split: files} from the flags of `add_shard_count_arguments`."""
  return {split: getattr(args, f'{split}_shards') for split in defaults}


def _positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be at least 1, not {value}')
  return value


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the `imagenet2012-local` console script."""
  # Before any subcommand imports TensorFlow, and only if the user chose no
  # level: 1 hides TensorFlow's INFO lines (CPU features, buffer sizes), never
  # its warnings or errors.
  os.environ.setdefault(_TF_LOG_LEVEL_ENV_VAR, '1')
  parser = argparse.ArgumentParser(
      prog='imagenet2012-local',
      description='Tools around the imagenet2012_local TFDS dataset.',
  )
  commands = parser.add_subparsers(
      dest='command', required=True, parser_class=_CommandParser
  )
  for name, (module_name, description) in _COMMANDS.items():
    commands.add_parser(
        name,
        # argparse fills in %-placeholders in a help, not in a description.
        help=description.replace('%', '%%'),
        description=description,
        module_name=module_name,
    )
  args = parser.parse_args(argv)
  try:
    return args.run(args)
  except errors.Imagenet2012LocalError as e:
    # Ours are two lines, what is wrong and what to do: no traceback needed.
    print(f'{parser.prog} {args.command}: error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
  raise SystemExit(main())
