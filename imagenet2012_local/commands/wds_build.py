"""`imagenet2012-local build-wds`: WebDataset shards straight from the archives.

Writes the folder of `imagenet1k-train-%04d.tar` and
`imagenet1k-validation-%04d.tar` files that timm, OpenCLIP and HF `datasets`
read (the layout: `wds_layout`), with `_info.json` beside them, in one pass
over the manual dir's archives: the same checks, fixes, plan, resume and
atomic publish as `build-classic` (`archive_build`).
"""

from __future__ import annotations

import os
import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path

from imagenet2012_local.commands import archive_build
from imagenet2012_local.commands import cli
from imagenet2012_local.layouts import wds_layout


@dataclasses.dataclass(frozen=True)
class Built:
  """A finished build: where it is and what each split holds."""

  output_dir: Path
  splits: list[archive_build.SplitWritten]


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `build-wds` flags to `parser`."""
  archive_build.add_arguments(
      parser,
      lambda p: cli.add_shard_count_arguments(p, wds_layout.DEFAULT_SHARDS),
  )


def run(args: argparse.Namespace) -> int:
  """Runs `build-wds` with parsed flags; returns the exit status."""
  built = build(
      **archive_build.flags_of(args),
      num_shards=cli.shard_counts(args, wds_layout.DEFAULT_SHARDS),
  )
  print(summary(built))
  return 0


def build(
    manual_dir: str | os.PathLike[str],
    output_dir: Path,
    num_shards: Mapping[str, int] | None = None,
    **options: bool | None,
) -> Built:
  """Writes `output_dir` as WebDataset shards from the inputs in `manual_dir`.

  Args:
    manual_dir: The folder (or URL) of the archives or an extracted copy.
    output_dir: Folder to create.
    num_shards: Files per split; splits not given use
      `wds_layout.DEFAULT_SHARDS`.
    **options: `archive_build.build`'s overwrite, verify_checksums,
      skip_bad_images and resume.

  Raises:
    errors.Imagenet2012LocalError: what `archive_build.build` raises (the
      TFDS build's errors for the same archives; an output that exists or
      would delete the archives).
  """
  splits = archive_build.build(
      manual_dir,
      output_dir,
      {**wds_layout.DEFAULT_SHARDS, **(num_shards or {})},
      wds_layout.WdsLayout,
      finish=_write_info,
      **options,
  )
  return Built(output_dir.absolute(), splits)


def _write_info(staging: Path, splits: list[archive_build.SplitWritten]) -> None:
  """Writes `_info.json`, the splits' files and sizes, beside the shards."""
  (staging / wds_layout.INFO_FILE).write_text(
      wds_layout.info_json({s.split: s.shard_lengths for s in splits})
  )


def summary(built: Built) -> str:
  """What `build` wrote where, in a few lines for the terminal."""
  lines = [f'Wrote {built.output_dir}:']
  for s in built.splits:
    first, last = (wds_layout.shard_name(s.split, k) for k in (0, s.num_shards - 1))
    lines += archive_build.summary_lines(s, first, last)
  lines += [
      '  Each sample: <key>.jpg (the image), <key>.cls (label: 0 to 999 over'
      ' the sorted wnids, -1 in test), <key>.json (filename, label, wnid).',
      f'  Splits, files and sample counts: {built.output_dir / wds_layout.INFO_FILE}',
  ]
  return '\n'.join(lines)
