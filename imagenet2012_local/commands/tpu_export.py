"""`imagenet2012-local export-tpu`: the classic TFRecords from a prepared dataset.

Writes the folder of `train-%05d-of-01024` and `validation-%05d-of-00128`
files that the TPU ResNet input pipeline, Intel's model-zoo ResNet50 scripts
and MLPerf's reference read (the layout: `classic_layout`) from a prepared
`imagenet2012_local` dataset. The stored JPEG bytes go out as they are (the
build already fixed CMYK and PNG images); heights and widths come from the
JPEG header, so no image is ever decoded. Only TFRecord builds can be
exported: their shard files are read and their Examples parsed and written in
Python (`tfrecords`, `example_encoding`), without TensorFlow, whose import
alone would take longer than exporting a few GB.

Memory stays bounded by a few hundred MB whatever the split size, and at most
one output shard is open at a time (plus the sort's bucket files, in
`<split>.buckets` inside the staging folder): train goes out shuffled by the
seed, validation and test sorted by file name (`tpu_export_order`).

Everything is written into a staging folder renamed to the output folder only
once all of it is written (`publish`), so an interrupted export never leaves a
folder that looks complete.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import tensorflow_datasets as tfds
import tqdm

from imagenet2012_local import errors
from imagenet2012_local.commands import cli
from imagenet2012_local.commands import tpu_export_order
from imagenet2012_local.engine import external_sort
from imagenet2012_local.engine import publish
from imagenet2012_local.gate import build_lock
from imagenet2012_local.gate import disk_space
from imagenet2012_local.layouts import classic_layout

DEFAULT_SPLITS = ('train', 'validation')

_REBUILD = 'Its files changed after the build: rebuild it, then export again.'


class ExportError(errors.Imagenet2012LocalError):
  """The export cannot be done as asked; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `export-tpu` flags to `parser`."""
  parser.add_argument(
      '--data_dir',
      help='TFDS data dir holding the prepared imagenet2012_local (default:'
      ' TFDS default, ~/tensorflow_datasets).',
  )
  parser.add_argument(
      '--output_dir',
      required=True,
      help='Folder to create with the TFRecord files; must not exist unless'
      ' --overwrite.',
  )
  parser.add_argument(
      '--splits',
      default=','.join(DEFAULT_SPLITS),
      help='Comma-separated splits to export, of train, validation, test'
      ' (default: %(default)s).',
  )
  parser.add_argument(
      '--seed',
      type=int,
      default=0,
      help='Seed of the train order (default: %(default)s).',
  )
  cli.add_classic_layout_arguments(parser)
  parser.add_argument(
      '--overwrite',
      action='store_true',
      help='Replace --output_dir if it exists (only once the export is done;'
      ' never one that is, holds or is inside the dataset read).',
  )


def run(args: argparse.Namespace) -> int:
  """Runs `export-tpu` with parsed flags; returns the exit status."""
  splits = [s.strip() for s in args.splits.split(',') if s.strip()]
  export(
      data_dir=args.data_dir,
      output_dir=Path(args.output_dir),
      splits=splits,
      num_shards=cli.classic_shard_counts(args),
      seed=args.seed,
      dali_index=args.dali_index,
      overwrite=args.overwrite,
  )
  print(f'Wrote {args.output_dir}')
  return 0


def export(
    data_dir: str | os.PathLike[str] | None,
    output_dir: Path,
    splits: Sequence[str] = DEFAULT_SPLITS,
    num_shards: dict[str, int] | None = None,
    seed: int = 0,
    dali_index: bool = False,
    overwrite: bool = False,
) -> None:
  """Writes `output_dir` with the `<split>-%05d-of-%05d` files of `splits`.

  Args:
    data_dir: TFDS data dir of the prepared dataset; None for TFDS's default.
    output_dir: Folder to create.
    splits: Splits to export: 'train', 'validation' and/or 'test'.
    num_shards: Files per split; splits not given use
      `classic_layout.DEFAULT_SHARDS`.
    seed: Seed of the train order.
    dali_index: Also write a DALI index per file.
    overwrite: Replace an existing `output_dir` once the export is done.

  Raises:
    ExportError: The dataset is not prepared or not in TFRecord files, a
      split is unknown or missing from it, or an image is not a JPEG.
    protected_paths.InputFolderError: `output_dir` is, holds or is inside
      the prepared dataset's folder (or holds an ImageNet archive).
    publish.OutputExistsError: `output_dir` exists without `overwrite`.
    build_lock.OutputNotWritableError, build_lock.BuildInProgressError:
      `output_dir` cannot be written, or another build is writing it.
    disk_space.DiskSpaceError: the disk filled up.
    tfrecords.CorruptRecordError: A file of the dataset is damaged.
  """
  num_shards = {**classic_layout.DEFAULT_SHARDS, **(num_shards or {})}
  unknown = [s for s in splits if s not in classic_layout.DEFAULT_SHARDS]
  if unknown or not splits:
    raise ExportError(errors.two_lines(
        f'--splits must name at least one known split; unknown: {unknown}',
        f'Choose among {", ".join(classic_layout.DEFAULT_SHARDS)}.',
    ))
  output_dir = output_dir.absolute()
  builder = tfds.builder('imagenet2012_local', data_dir=data_dir)
  # The dataset read: an output at, around or inside it is never replaced.
  inputs = [builder.data_path]
  publish.check_free(output_dir, overwrite, inputs)
  if not builder.is_prepared():
    raise ExportError(errors.two_lines(
        f'No prepared imagenet2012_local {builder.info.version} in'
        f' {builder.data_dir}',
        'Build it first with `tfds build imagenet2012_local --imports'
        ' imagenet2012_local --manual_dir ...`, or pass its --data_dir.',
    ))
  if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
    raise ExportError(errors.two_lines(
        f'The prepared dataset in {builder.data_dir} is in'
        f' {builder.info.file_format.value} files; export-tpu reads TFRecord'
        ' builds only',
        'Build one with `tfds build ... --file_format tfrecord` and pass its'
        ' --data_dir.',
    ))
  missing = [s for s in splits if s not in builder.info.splits]
  if missing:
    raise ExportError(errors.two_lines(
        f'The prepared dataset in {builder.data_dir} has no {missing} split'
        f' (it has {", ".join(builder.info.splits)})',
        'Choose others with --splits, or build the dataset with the archive'
        ' of that split first.',
    ))

  with (
      build_lock.claimed(output_dir, output_dir, '--output_dir'),
      disk_space.full_disk_reported(output_dir, output_dir.parent),
      publish.staged(output_dir, overwrite, inputs) as staging,
  ):
    for split in splits:
      _export_split(
          builder, split, staging, num_shards[split], seed, dali_index
      )


def _export_split(
    builder: tfds.core.DatasetBuilder,
    split: str,
    staging: Path,
    num_shards: int,
    seed: int,
    dali_index: bool,
) -> None:
  """Writes one split's files (and DALI indexes) into `staging`."""
  total = builder.info.splits[split].num_examples
  to_record = _record_maker(builder)
  if split == 'train':
    records = tpu_export_order.shuffled(
        map(to_record, tpu_export_order.read_split(builder, split, seed)), seed
    )
  else:
    try:
      records = tpu_export_order.sorted_by_name(
          builder, split, total, to_record, staging / f'{split}.buckets'
      )
    except external_sort.ReadChangedError as e:
      raise ExportError(errors.two_lines(
          f'{split} in {builder.data_dir} was read in a different order twice',
          'Make sure nothing writes the dataset during the export, then run it'
          ' again.',
      )) from e
  records = iter(
      tqdm.tqdm(records, total=total, desc=f'{split}: writing', unit=' images')
  )
  written = 0
  for k, size in enumerate(classic_layout.shard_sizes(total, num_shards)):
    name = classic_layout.shard_name(split, k, num_shards)
    index = classic_layout.dali_index_path(staging, name) if dali_index else None
    written += classic_layout.write_shard(
        staging / name, itertools.islice(records, size), index
    )
  if written != total or next(records, None) is not None:
    raise ExportError(errors.two_lines(
        f'{split} in {builder.data_dir} does not hold the {total} examples its'
        ' metadata says',
        _REBUILD,
    ))


def _record_maker(
    builder: tfds.core.DatasetBuilder,
) -> Callable[[dict[str, object]], bytes]:
  """Turns a stored example into a classic record (`classic_layout`)."""
  class_names = builder.info.features['label'].names

  def to_record(example: dict[str, object]) -> bytes:
    file_name = example['file_name'].decode()
    try:
      return classic_layout.make_record(
          example['image'], int(example['label']), file_name, class_names
      )
    except classic_layout.NotJpegError as e:
      raise ExportError(errors.two_lines(
          f'{builder.data_dir}: the image {file_name} is not stored as a JPEG',
          _REBUILD,
      )) from e

  return to_record

