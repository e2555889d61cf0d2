"""`imagenet2012-local export-tpu`: the TFRecords classic ResNet pipelines read.

The TPU ResNet input pipeline, Intel's model-zoo ResNet50 scripts and MLPerf's
reference read a folder of `train-%05d-of-01024` and `validation-%05d-of-00128`
files holding `tf.train.Example`s with the `image/...` keys of TensorFlow's old
conversion script. This module writes that folder from a prepared
`imagenet2012_local` dataset. The stored JPEG bytes go out as they are (the
build already fixed CMYK and PNG images); heights and widths come from the JPEG
header, so no image is ever decoded. Only TFRecord builds can be exported:
their shard files are read and their Examples parsed and written in Python
(`tfrecords`, `example_encoding`), without TensorFlow, whose import alone
would take longer than exporting a few GB.

Memory stays bounded by a few hundred MB whatever the split size, and at most
one output shard is open at a time (plus, for the sorted splits, at most
`_MAX_BUCKETS` temporary files):

- train is streamed in one pass. The prepared split is already a global
  deterministic shuffle, so it is read with its shard order permuted by the
  seed and passed through a seeded shuffle buffer of `_SHUFFLE_BUFFER` records:
  the same seed and dataset give the same files, another seed another order.
- validation (and test) are sorted by file name across shards, as the old
  script wrote them. A first pass reads only the names and ranks them; a
  second writes each record into the temporary bucket file of its rank range
  (buckets of about `_BUCKET_BYTES`); then each bucket in turn is read back,
  put in rank order in memory and streamed to the output shards. The buckets
  take as much temporary disk as the split (6.4 GB for validation), inside the
  staging folder below, and are deleted as they are read.

Everything is written into a sibling folder `<output>.incomplete-<random>`,
renamed to the output folder only once all of it is written, so an interrupted
export never leaves a folder that looks complete.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from imagenet2012_local import example_encoding
from imagenet2012_local import image_fixes
from imagenet2012_local import tfrecords

DEFAULT_SHARDS = {'train': 1024, 'validation': 128, 'test': 256}
DEFAULT_SPLITS = ('train', 'validation')
DALI_INDEX_DIR = 'dali_idx'

# Train records held for shuffling: ~110 MB of ImageNet-sized JPEGs.
_SHUFFLE_BUFFER = 1024
# Target size of one temporary bucket of a sorted split, held in memory once.
_BUCKET_BYTES = 128 << 20
# Caps the temporary bucket files open at once, well below the usual ulimit.
_MAX_BUCKETS = 128


class ExportError(Exception):
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
  for split, shards in DEFAULT_SHARDS.items():
    parser.add_argument(
        f'--{split}_shards',
        type=_positive_int,
        default=shards,
        help=f'Number of {split} files (default: %(default)s).',
    )
  parser.add_argument(
      '--seed',
      type=int,
      default=0,
      help='Seed of the train order (default: %(default)s).',
  )
  parser.add_argument(
      '--dali_index',
      action='store_true',
      help='Also write NVIDIA DALI index files, into'
      f' <output_dir>/{DALI_INDEX_DIR}/.',
  )
  parser.add_argument(
      '--overwrite',
      action='store_true',
      help='Replace --output_dir if it exists (only once the export is done).',
  )


def run(args: argparse.Namespace) -> int:
  """Runs `export-tpu` with parsed flags; returns the exit status."""
  splits = [s.strip() for s in args.splits.split(',') if s.strip()]
  try:
    export(
        data_dir=args.data_dir,
        output_dir=Path(args.output_dir),
        splits=splits,
        num_shards={s: getattr(args, f'{s}_shards') for s in DEFAULT_SHARDS},
        seed=args.seed,
        dali_index=args.dali_index,
        overwrite=args.overwrite,
    )
  except (ExportError, tfrecords.CorruptRecordError) as e:
    print(f'imagenet2012-local export-tpu: error: {e}', file=sys.stderr)
    return 1
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
    num_shards: Files per split; splits not given use `DEFAULT_SHARDS`.
    seed: Seed of the train order.
    dali_index: Also write a DALI index per file under `DALI_INDEX_DIR`.
    overwrite: Replace an existing `output_dir` once the export is done.

  Raises:
    ExportError: `output_dir` exists without `overwrite`, the dataset is not
      prepared or not in TFRecord files, or a split is unknown or missing
      from it.
    tfrecords.CorruptRecordError: A file of the dataset is damaged.
  """
  num_shards = {**DEFAULT_SHARDS, **(num_shards or {})}
  unknown = [s for s in splits if s not in DEFAULT_SHARDS]
  if unknown or not splits:
    raise ExportError(
        f'unknown splits {unknown}: choose among {", ".join(DEFAULT_SHARDS)}'
    )
  output_dir = output_dir.absolute()
  if output_dir.exists() and not overwrite:
    raise ExportError(f'{output_dir} exists; pass --overwrite to replace it')
  builder = tfds.builder('imagenet2012_local', data_dir=data_dir)
  if not builder.is_prepared():
    raise ExportError(
        f'no prepared imagenet2012_local {builder.info.version} in'
        f' {builder.data_dir}: build it first with `tfds build'
        ' imagenet2012_local --imports imagenet2012_local --manual_dir ...`'
        ' or pass --data_dir'
    )
  if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
    raise ExportError(
        f'the prepared dataset in {builder.data_dir} is in'
        f' {builder.info.file_format.value} files; export-tpu reads TFRecord'
        ' builds only: build one with `tfds build ... --file_format tfrecord`'
    )
  missing = [s for s in splits if s not in builder.info.splits]
  if missing:
    raise ExportError(
        f'the prepared dataset in {builder.data_dir} has no {missing} split'
        f' (it has {", ".join(builder.info.splits)}); choose others with'
        ' --splits'
    )

  output_dir.parent.mkdir(parents=True, exist_ok=True)
  staging = _sibling_temp_dir(output_dir, 'incomplete')
  try:
    for split in splits:
      _export_split(
          builder, split, staging, num_shards[split], seed, dali_index
      )
    _publish(staging, output_dir, overwrite)
  finally:
    shutil.rmtree(staging, ignore_errors=True)  # Gone already on success.


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
  if split == 'train':
    records = _shuffled_records(builder, split, seed)
  else:
    records = _records_sorted_by_name(
        builder, split, total, staging / f'{split}.buckets'
    )
  records = iter(
      tqdm.tqdm(records, total=total, desc=f'{split}: writing', unit=' images')
  )
  written = 0
  for k in range(num_shards):
    size = total // num_shards + (k < total % num_shards)  # Differ by <= 1.
    name = f'{split}-{k:05d}-of-{num_shards:05d}'
    index = staging / DALI_INDEX_DIR / f'{name}.idx' if dali_index else None
    written += _write_shard(
        staging / name, index, itertools.islice(records, size)
    )
  if written != total or next(records, None) is not None:
    raise ExportError(
        f'{split} does not hold the {total} examples its metadata says'
    )


def _write_shard(
    path: Path, index: Path | None, records: Iterable[bytes]
) -> int:
  """Writes one TFRecord file and, if `index` is given, its DALI index.

  Returns:
    The number of records written.
  """
  with tfrecords.Writer(path) as writer:
    lines = [
        f'{writer.write(record)} {len(record) + tfrecords.FRAMING_BYTES}\n'
        for record in records
    ]
  if index is not None:
    index.parent.mkdir(exist_ok=True)
    index.write_text(''.join(lines))
  return len(lines)


def _publish(staging: Path, output_dir: Path, overwrite: bool) -> None:
  """Renames the finished `staging` folder to `output_dir`."""
  if output_dir.exists():
    if not overwrite:
      raise ExportError(f'{output_dir} appeared during the export; kept it')
    # Moved aside first: a rename cannot replace a non-empty folder.
    old = _sibling_temp_dir(output_dir, 'replaced')
    os.replace(output_dir, old / output_dir.name)
    os.replace(staging, output_dir)
    shutil.rmtree(old)
  else:
    os.replace(staging, output_dir)


def _read_split(
    builder: tfds.core.DatasetBuilder, split: str, seed: int | None = None
) -> Iterator[dict[str, object]]:
  """The split's stored examples, shards in seeded order if `seed` is given.

  The records are read and parsed in Python; the images stay undecoded.
  """
  paths = list(builder.info.splits[split].filepaths)  # In shard order.
  if seed is not None:
    random.Random(seed).shuffle(paths)
  for path in paths:
    for record in tfrecords.read(path):
      example = example_encoding.parse(record)
      yield {key: example[key][0] for key in ('image', 'label', 'file_name')}


def _shuffled_records(
    builder: tfds.core.DatasetBuilder, split: str, seed: int
) -> Iterator[bytes]:
  """The split's output records, streamed through a seeded shuffle buffer."""
  rng = random.Random(seed)
  to_record = _RecordMaker(builder)
  buffer = []
  for example in _read_split(builder, split, seed):
    record = to_record(example)
    if len(buffer) < _SHUFFLE_BUFFER:
      buffer.append(record)
      continue
    i = rng.randrange(_SHUFFLE_BUFFER)
    yield buffer[i]
    buffer[i] = record
  rng.shuffle(buffer)
  yield from buffer


def _records_sorted_by_name(
    builder: tfds.core.DatasetBuilder, split: str, total: int, bucket_dir: Path
) -> Iterator[bytes]:
  """The split's output records sorted by file name, via temporary buckets.

  Reads the split twice before returning; the iterator then reads the buckets.
  """
  # Pass 1: names and sizes only.
  names = []
  total_bytes = 0
  for example in tqdm.tqdm(
      _read_split(builder, split),
      total=total,
      desc=f'{split}: reading names',
      unit=' images',
  ):
    names.append(example['file_name'])
    total_bytes += len(example['image'])
  # rank[i]: position in the sorted output of the i-th example read.
  rank = np.empty(len(names), dtype=np.int64)
  rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
  num_buckets = math.ceil(total_bytes / _BUCKET_BYTES)
  num_buckets = min(_MAX_BUCKETS, max(1, num_buckets))
  bucket = rank * num_buckets // max(1, len(names))  # Contiguous rank ranges.

  # Pass 2: each record into its bucket's file, in reading order.
  bucket_dir.mkdir()
  paths = [bucket_dir / f'{b:05d}' for b in range(num_buckets)]
  to_record = _RecordMaker(builder)
  writers = [tfrecords.Writer(p) for p in paths]
  try:
    examples = tqdm.tqdm(
        _read_split(builder, split),
        total=total,
        desc=f'{split}: bucketing',
        unit=' images',
    )
    for i, example in enumerate(examples):
      if example['file_name'] != names[i]:
        raise ExportError(f'{split} was read in a different order twice')
      writers[bucket[i]].write(to_record(example))
  finally:
    for writer in writers:
      writer.close()
  return _read_buckets(
      bucket_dir, paths, [rank[bucket == b] for b in range(num_buckets)]
  )


def _read_buckets(
    bucket_dir: Path, paths: Sequence[Path], ranks: Sequence[np.ndarray]
) -> Iterator[bytes]:
  """Pass 3: each bucket in turn, put in rank order in memory, then deleted.

  A bucket's records were written in reading order, so `ranks[b]` (the ranks
  of its examples, in reading order) says where each one goes.
  """
  for path, bucket_ranks in zip(paths, ranks):
    start = int(bucket_ranks.min()) if len(bucket_ranks) else 0
    ordered = [b''] * len(bucket_ranks)
    for r, record in zip(bucket_ranks, tfrecords.read(path)):
      ordered[r - start] = record
    path.unlink()
    yield from ordered
  bucket_dir.rmdir()


class _RecordMaker:
  """Turns a TFDS example into a serialized `tf.train.Example`, classic keys."""

  def __init__(self, builder: tfds.core.DatasetBuilder):
    self._wnids = [w.encode() for w in builder.info.features['label'].names]

  def __call__(self, example: dict[str, object]) -> bytes:
    image = example['image']
    file_name = example['file_name']
    header = image_fixes.read_jpeg_header(image)
    if header is None:
      raise ExportError(
          f'{file_name.decode()} is not stored as a JPEG; rebuild the dataset'
      )
    label = int(example['label'])
    # Classic 1-based labels over the sorted wnids; the test split has none.
    if label < 0:
      label, synset = -1, b''
    else:
      label, synset = label + 1, self._wnids[label]
    return example_encoding.serialize_features({
        'image/encoded': image,
        'image/format': b'JPEG',
        'image/filename': file_name,
        'image/class/label': label,
        'image/class/synset': synset,
        'image/height': header.height,
        'image/width': header.width,
        'image/colorspace': b'RGB',
        # What pipelines decode to (decode_jpeg(channels=3)); the few
        # grayscale JPEGs keep their bytes, as in the TFDS dataset.
        'image/channels': 3,
    })


def _sibling_temp_dir(path: Path, tag: str) -> Path:
  """A new folder `<path>.<tag>-<random>` beside `path`: same file system."""
  return Path(tempfile.mkdtemp(prefix=f'{path.name}.{tag}-', dir=path.parent))


def _positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be at least 1, not {value}')
  return value
