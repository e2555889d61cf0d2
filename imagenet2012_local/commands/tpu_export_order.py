"""The records of a prepared split, in the order `export-tpu` writes them.

A prepared split's examples are read from its TFRecord shard files and
parsed in Python (`tfrecords`, `example_encoding`), images undecoded. Memory
stays bounded by a few hundred MB whatever the split size:

- train is streamed in one pass. The prepared split is already a global
  deterministic shuffle, so it is read with its shard order permuted by the
  seed and passed through a seeded shuffle buffer of `_SHUFFLE_BUFFER`
  records: the same seed and dataset give the same files, another seed
  another order.
- validation (and test) are sorted by file name across shards, as the old
  script wrote them, through temporary bucket files (`external_sort`): as
  much temporary disk as the split (6.4 GB for validation).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import tensorflow_datasets as tfds
import tqdm

from imagenet2012_local.engine import external_sort
from imagenet2012_local.layouts import example_encoding
from imagenet2012_local.layouts import tfrecords

# Train records held for shuffling: ~110 MB of ImageNet-sized JPEGs.
_SHUFFLE_BUFFER = 1024


def read_split(
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


def shuffled(records: Iterable[bytes], seed: int) -> Iterator[bytes]:
  """`records` streamed through a seeded shuffle buffer."""
  rng = random.Random(seed)
  buffer = []
  for record in records:
    if len(buffer) < _SHUFFLE_BUFFER:
      buffer.append(record)
      continue
    i = rng.randrange(_SHUFFLE_BUFFER)
    yield buffer[i]
    buffer[i] = record
  rng.shuffle(buffer)
  yield from buffer


def sorted_by_name(
    builder: tfds.core.DatasetBuilder,
    split: str,
    total: int,
    to_record: Callable[[dict[str, object]], bytes],
    bucket_dir: Path,
) -> Iterator[bytes]:
  """The split's records sorted by file name (`external_sort`).

  Reads the split twice before returning; the iterator then reads the buckets.

  Raises:
    external_sort.ReadChangedError: the two reads gave different orders.
  """

  def read(desc: str) -> Iterator[dict[str, object]]:
    examples = read_split(builder, split)
    yield from tqdm.tqdm(examples, total=total, desc=desc, unit=' images')

  names_and_sizes = (
      (example['file_name'], len(example['image']))
      for example in read(f'{split}: reading names')
  )
  named_records = (
      (example['file_name'], to_record(example))
      for example in read(f'{split}: bucketing')
  )
  return external_sort.sorted_by_key(names_and_sizes, named_records, bucket_dir)
