"""The read in order that writing in place makes of each archive, planned.

Writing in order (`in_order_writer`) places each image's record in its shard
as the archive goes by, so before a byte is read this plans, for every image
of the shards being written: the framed size of its record (`record_sizes`:
the layout's `record_size` of the stored size and JPEG size that the index's
read in order noted, `archive_index.ArchiveIndex.stored_sizes`), that
record's offset in its shard (the sizes of those before it), and when the
image is read (`ArchiveReads`: by offset within segments of
`_SEGMENT_BYTES`, the last segment first). `ArchiveReads.images` then reads
the images in that order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from imagenet2012_local.engine import plan
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.layouts import tfrecords
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import direct_reads
from imagenet2012_local.sources import in_order_index

# The images are read in segments of this size, the last segment of the last
# archive first, each in order, through the page cache: what the index's read
# (also through it) left there, the archives' ends, is read before the
# writing evicts it: as much as the page cache holds, read from memory
# instead of the disk. A seek per segment costs a spinning disk ~1 % of the
# time it reads one.
_SEGMENT_BYTES = 64 << 20


def record_sizes(task: plan.ShardTask, layout: shard_writer.Layout) -> np.ndarray:
  """The framed size of each of the task's records, in writing order; 0 for
  an image no decoder reads (left out)."""
  images = task.images
  return np.array([
      layout.record_size(int(stored), int(height), int(width), int(label), name.decode())
      + tfrecords.FRAMING_BYTES if stored >= 0 else 0
      for stored, height, width, label, name in zip(
          images.stored_sizes, images.heights, images.widths, task.labels, images.names
      )
  ], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class ArchiveReads:
  """Every planned image of one archive, in the order it is read (columns)."""

  archive: str
  index: archive_index.ArchiveIndex  # The split's, shared by its tasks.
  rows: np.ndarray  # The image's row of `index`.
  owners: np.ndarray  # The number of the shard its record goes to.
  places: np.ndarray  # The record's offset in that shard.
  sizes: np.ndarray  # The record's framed size (`record_sizes`).
  labels: np.ndarray
  segments: np.ndarray  # The segment (see `_SEGMENT_BYTES`) it is read in.

  @classmethod
  def of(
      cls,
      archive: str,
      shards: Sequence[tuple[int, plan.ShardTask, np.ndarray]],
  ) -> ArchiveReads:
    """The reads of `archive` for `shards`: (number, task, `record_sizes`
    of the task) of each shard whose images it holds."""
    index = shards[0][1].split_index
    rows, owners, places, sizes, labels = [], [], [], [], []
    for number, task, task_sizes in shards:
      task_rows = np.arange(len(index)) if task.rows is None else task.rows
      rows.append(task_rows)
      owners.append(np.full(len(task_rows), number, dtype=np.int32))
      places.append(np.cumsum(task_sizes) - task_sizes)
      sizes.append(task_sizes)
      labels.append(task.labels)
    rows, owners, places, sizes, labels = map(
        np.concatenate, (rows, owners, places, sizes, labels)
    )
    segments = index.offsets[rows] // _SEGMENT_BYTES
    order = np.lexsort((index.offsets[rows], -segments))  # See _SEGMENT_BYTES.
    return cls(
        archive, index, rows[order], owners[order], places[order],
        sizes[order], labels[order], segments[order],
    )

  def images(
      self, first: int, on_piece: Callable[[bytes], object]
  ) -> Iterator[tuple[int, bytes]]:
    """(k, the bytes of the k-th image read), from the `first`-th on; each
    segment is read in order from its first such image (`direct_reads`
    through the page cache, `in_order_index.InOrderFile`), and `on_piece`
    gets each piece read. Closing the iterator ends the read."""
    reading = None  # The segment being read: (its number, pieces, view).
    try:
      for k in range(first, len(self.rows)):
        offset = int(self.index.offsets[self.rows[k]])
        if reading is None or reading[0] != self.segments[k]:
          if reading:
            reading[1].close()
          start = offset // direct_reads.PIECE * direct_reads.PIECE
          pieces = direct_reads.pieces(self.archive, start, direct=False)
          reading = (
              self.segments[k], pieces,
              in_order_index.InOrderFile(pieces, on_piece, start),
          )
        view = reading[2]
        view.seek(offset)
        yield k, view.read(int(self.index.sizes[self.rows[k]]))
    finally:
      if reading:
        reading[1].close()
