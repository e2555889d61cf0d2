"""Records sorted by a key (a file name) with bounded memory, via temporary files.

A split is too big to sort in memory (6.4 GB for validation), so it is read
twice and sorted through bucket files:

1. Keys and sizes only: the keys are ranked (a stable sort, so equal keys keep
   their reading order) and the number of buckets chosen so that one holds
   about `_BUCKET_BYTES`, at most `_MAX_BUCKETS` (files open at once, well
   below the usual ulimit).
2. Records: each is appended to the bucket file of its rank range.
3. On iteration, each bucket in turn is read back, put in rank order in
   memory and deleted.

On disk, under the `bucket_dir` given (which must not exist; it is removed
once the last bucket is read): one TFRecord file per bucket (`tfrecords`),
named `%05d` by bucket number. Bucket b holds the records whose rank lies in
the b-th of the equal, contiguous rank ranges, in the order they were read.
The buckets take as much disk as the records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from imagenet2012_local import errors
from imagenet2012_local.layouts import tfrecords

# Target size of one bucket, held in memory once.
_BUCKET_BYTES = 128 << 20
# Caps the bucket files open at once.
_MAX_BUCKETS = 128


class ReadChangedError(errors.Imagenet2012LocalError, ValueError):
  """The second reading did not give the keys of the first, in order."""


def sorted_by_key(
    keys_and_sizes: Iterable[tuple[str | bytes, int]],
    keyed_records: Iterable[tuple[str | bytes, bytes]],
    bucket_dir: Path,
) -> Iterator[bytes]:
  """The records in key order, through bucket files in `bucket_dir`.

  Both readings happen before this returns; the iterator then reads the
  buckets. `keyed_records` is iterated only once `keys_and_sizes` is done.

  Args:
    keys_and_sizes: Pass 1: each record's key and about its size in bytes.
    keyed_records: Pass 2: the same records, in the same order, with their
      key and serialized bytes.
    bucket_dir: Folder to create for the buckets.

  Raises:
    ReadChangedError: `keyed_records` does not give the keys of
      `keys_and_sizes` in the same order.
  """
  keys = []
  total_bytes = 0
  for key, size in keys_and_sizes:
    keys.append(key)
    total_bytes += size
  # rank[i]: position in the sorted output of the i-th record read.
  rank = np.empty(len(keys), dtype=np.int64)
  rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
  num_buckets = math.ceil(total_bytes / _BUCKET_BYTES)
  num_buckets = min(_MAX_BUCKETS, max(1, num_buckets))
  bucket = rank * num_buckets // max(1, len(keys))  # Contiguous rank ranges.

  bucket_dir.mkdir()
  paths = [bucket_dir / f'{b:05d}' for b in range(num_buckets)]
  writers = [tfrecords.Writer(p) for p in paths]
  read = 0
  try:
    for key, record in keyed_records:
      if read >= len(keys) or key != keys[read]:
        raise _read_changed(f'record {read} has another key the second time')
      writers[bucket[read]].write(record)
      read += 1
  finally:
    for writer in writers:
      writer.close()
  if read != len(keys):
    raise _read_changed(f'{read} records the second time, not {len(keys)}')
  return _read_buckets(
      bucket_dir, paths, [rank[bucket == b] for b in range(num_buckets)]
  )


def _read_changed(problem: str) -> ReadChangedError:
  return ReadChangedError(errors.two_lines(
      f'The records changed between the two readings: {problem}',
      'Make sure nothing writes the input while it is read, then run again.',
  ))


def _read_buckets(
    bucket_dir: Path, paths: Sequence[Path], ranks: Sequence[np.ndarray]
) -> Iterator[bytes]:
  """Pass 3: each bucket in turn, put in rank order in memory, then deleted.

  A bucket's records were written in reading order, so `ranks[b]` (the ranks
  of its records, in reading order) says where each one goes.
  """
  for path, bucket_ranks in zip(paths, ranks):
    start = int(bucket_ranks.min()) if len(bucket_ranks) else 0
    ordered = [b''] * len(bucket_ranks)
    for r, record in zip(bucket_ranks, tfrecords.read(path)):
      ordered[r - start] = record
    path.unlink()
    yield from ordered
  bucket_dir.rmdir()
