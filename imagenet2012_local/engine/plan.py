"""The plan of a split: which images go to which shard, in which order.

TFDS's generator path sends every example through its shuffler, which spills
the whole dataset to temporary files before it writes the first shard. Here
the order is decided up front from the archive's index: sorted by file name
(so it does not depend on how the tar lists its members), put in a seeded
random order and dealt into contiguous shards. Each shard is then written in
one go by reading its images by offset: no spill, and the output is globally
shuffled and the same on every build.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import source
from imagenet2012_local import errors

SHUFFLE_SEED = 2012
_NAMES_PER_PIECE = 1 << 16


class DuplicateImagesError(errors.Imagenet2012LocalError, ValueError):
  """Two images of one split have the same file name."""


@dataclasses.dataclass(frozen=True)
class ShardTask:
  """One output shard: which images, from where, in which order."""

  split: str
  index: int  # Of the shard in its split.
  num_shards: int  # Of its split.
  reader: source.ImageReader  # Reads the images; travels to workers.
  # The split's whole index, shared by its tasks, and this shard's rows of it
  # in writing order: a reordered copy of the index as well would take ~35
  # bytes an image more (~45 MB at full ImageNet's count).
  split_index: archive_index.ArchiveIndex
  rows: np.ndarray | None  # None: all of `split_index`, in its order.
  labels: np.ndarray  # Class index of each image; -1 in the unlabeled test split.

  @property
  def images(self) -> archive_index.ArchiveIndex:
    """The shard's images, in writing order."""
    return self.split_index if self.rows is None else self.split_index.take(self.rows)

  def __reduce__(self):
    # What travels to a worker: this shard's images, not the split's index.
    fields = (self.split, self.index, self.num_shards, self.reader)
    return ShardTask, (*fields, self.images, None, self.labels)

  def examples(self) -> Iterator[tuple[str, bytes, int]]:
    """(file name, bytes as read, label) of each image, in writing order."""
    # Two passes over the task's columns, not a list of its examples: ~200
    # bytes an image, 16 MB a worker for a shard of 80,000 small images.
    images = self.images
    for name, data, label in zip(images.names, self.reader.read(images), self.labels):
      yield name.decode(), data, int(label)


# The class index of each image of an index, in its order.
LabelsOf = Callable[[archive_index.ArchiveIndex], np.ndarray]


def shuffled_rows(index: archive_index.ArchiveIndex, where: str) -> np.ndarray:
  """The rows of `index` sorted by file name, then in the split's seeded order.

  Raises:
    DuplicateImagesError: two images share a file name.
  """
  # Shuffled in place, as 8-byte machine ints: the swaps random.shuffle makes
  # depend only on the length, so this is `by_name` in the order of a
  # shuffled range(n), without one (a list of Python ints takes ~36 bytes a
  # row against 8: ~46 MB for train's 1.28 M rows).
  rows = array.array('q', rows_by_name(index, where).astype(np.int64).tobytes())
  random.Random(SHUFFLE_SEED).shuffle(rows)
  return np.frombuffer(rows, dtype=np.int64)


def rows_by_name(index: archive_index.ArchiveIndex, where: str) -> np.ndarray:
  """The rows of `index` in file-name order.

  Raises:
    DuplicateImagesError: two images share a file name.
  """
  by_name = np.argsort(index.names, kind='stable')
  duplicates = set()
  # In pieces, each overlapping the next by one name: a sorted copy of all
  # names would take 23 MB more at full ImageNet's count.
  for start in range(0, len(by_name), _NAMES_PER_PIECE):
    names = index.names[by_name[start : start + _NAMES_PER_PIECE + 1]]
    duplicates.update(n.decode() for n in names[1:][names[1:] == names[:-1]])
  duplicates = sorted(duplicates)
  if duplicates:
    raise DuplicateImagesError(errors.two_lines(
        f'{where} holds {len(duplicates):,} file names more than once, e.g.'
        f' {", ".join(duplicates[:5])}; each image must appear once per split',
        'Use the official archive, or remove the duplicates (a copied tree'
        ' may hold two folders of one split).',
    ))
  return by_name


def deal(
    split: str,
    reader: source.ImageReader,
    index: archive_index.ArchiveIndex,
    labels_of: LabelsOf,
    sizes: Sequence[int],
    shuffled: bool,
) -> list[ShardTask]:
  """Deals a split's images into shards of `sizes` images each (a layout's
  shard policy): in the seeded random order (`shuffled_rows`), or in
  file-name order across shards.

  Raises:
    DuplicateImagesError: two images share a file name.
  """
  rows = (shuffled_rows if shuffled else rows_by_name)(index, reader.name)
  ends = itertools.accumulate(sizes)
  bounds = list(itertools.pairwise(itertools.chain([0], ends)))
  return _dealt(split, reader, index, rows, labels_of, bounds)


def _dealt(
    split: str,
    reader: source.ImageReader,
    index: archive_index.ArchiveIndex,
    rows: np.ndarray,
    labels_of: LabelsOf,
    bounds: Sequence[tuple[int, int]],
) -> list[ShardTask]:
  """One task per [start, end) of `bounds` over `index`'s `rows`, in shard order."""
  labels = labels_of(index)  # Label errors surface before writing.
  return [
      ShardTask(
          split=split,
          index=i,
          num_shards=len(bounds),
          reader=reader,
          split_index=index,
          rows=rows[start:end],
          labels=labels[rows[start:end]],
      )
      for i, (start, end) in enumerate(bounds)
  ]


def split_tasks(tasks: Sequence[ShardTask], split: str) -> list[ShardTask]:
  """The tasks of one split, in shard order."""
  return sorted((t for t in tasks if t.split == split), key=lambda t: t.index)
