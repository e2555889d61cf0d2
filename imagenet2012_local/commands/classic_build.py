"""`imagenet2012-local build-classic`: the classic layout straight from the archives.

Writes the folder of `train-%05d-of-01024` and `validation-%05d-of-00128`
TFRecord files that the TPU, Intel, MLPerf and DALI ResNet pipelines read
(the layout: `classic_layout`) in one pass over the manual dir's archives, with
no TFDS dataset in between. The checks, fixes, plan (train in the TFDS build's
seeded order; validation and test in file-name order across their shards),
resume and atomic publish are `archive_build`'s, shared with `build-wds`.
"""

from __future__ import annotations

import os
import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagenet2012_local.commands import archive_build
from imagenet2012_local.layouts import classic_layout
from imagenet2012_local.commands import cli


@dataclasses.dataclass(frozen=True)
class Built:
  """A finished build: where it is and what each split holds."""

  output_dir: Path
  splits: list[archive_build.SplitWritten]
  dali_index: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `build-classic` flags to `parser`."""
  archive_build.add_arguments(parser, cli.add_classic_layout_arguments)


def run(args: argparse.Namespace) -> int:
  """Runs `build-classic` with parsed flags; returns the exit status."""
  built = build(
      **archive_build.flags_of(args),
      num_shards=cli.classic_shard_counts(args),
      dali_index=args.dali_index,
  )
  print(summary(built))
  return 0


def build(
    manual_dir: str | os.PathLike[str],
    output_dir: Path,
    num_shards: Mapping[str, int] | None = None,
    dali_index: bool = False,
    **options: bool | None,
) -> Built:
  """Writes `output_dir` in the classic layout from the inputs in `manual_dir`.

  Args:
    manual_dir: The folder (or URL) of the archives or an extracted copy.
    output_dir: Folder to create.
    num_shards: Files per split; splits not given use
      `classic_layout.DEFAULT_SHARDS`.
    dali_index: Also write a DALI index per file.
    **options: `archive_build.build`'s overwrite, verify_checksums,
      skip_bad_images and resume.

  Raises:
    errors.Imagenet2012LocalError: what `archive_build.build` raises (the
      TFDS build's errors for the same archives; an output that exists, is
      being written by another build, or would delete the archives).
  """

  def layout(
      staging: Path, class_names: Sequence[str]
  ) -> classic_layout.ClassicLayout:
    return classic_layout.ClassicLayout(staging, class_names, dali_index)

  splits = archive_build.build(
      manual_dir,
      output_dir,
      {**classic_layout.DEFAULT_SHARDS, **(num_shards or {})},
      layout,
      **options,
  )
  return Built(output_dir.absolute(), splits, dali_index)


def summary(built: Built) -> str:
  """What `build` wrote where, in a few lines for the terminal."""
  lines = [f'Wrote {built.output_dir}:']
  for s in built.splits:
    first, last = (
        classic_layout.shard_name(s.split, k, s.num_shards)
        for k in (0, s.num_shards - 1)
    )
    lines += archive_build.summary_lines(s, first, last)
  if built.dali_index:
    lines.append(
        f'  DALI indexes: {built.output_dir / classic_layout.DALI_INDEX_DIR}/'
        '<file name>.idx'
    )
  lines.append(
      '  Labels (image/class/label): 1 to 1,000 over the sorted wnids, -1 in'
      ' test.'
  )
  return '\n'.join(lines)
