"""The TFDS layout: upstream `imagenet2012`'s examples in TFDS's shard files.

Each record is a tf.train.Example with `image` (JPEG bytes), `label` (0-based,
-1 in the test split) and `file_name`, serialized by `example_encoding`
exactly as TFDS would. Shards are named and placed by TFDS
(`<name>-<split>.<format>-%05d-of-%05d` in the build's temporary folder,
which TFDS renames when the build is done). TFRecord shards are framed by
`tfrecords`; other formats (ArrayRecord) by TFDS's own writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from imagenet2012_local.layouts import example_encoding
from imagenet2012_local.engine import plan
from imagenet2012_local import tfds_internals
from imagenet2012_local.layouts import tfrecords
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import source as source_lib

if TYPE_CHECKING:
  import tensorflow_datasets as tfds

_TFRECORD = 'tfrecord'  # tfds.core.FileFormat.TFRECORD.value


def plan_split(
    source: source_lib.Source, index: archive_index.ArchiveIndex
) -> list[plan.ShardTask]:
  """The shards of a split as a TFDS build makes them: TFDS's own shard
  count and sizes (so the files are named and sized as TFDS would), every
  split in the seeded random order.

  Raises:
    plan.DuplicateImagesError: two images share a file name.
  """
  num_shards = tfds_internals.number_of_shards(int(index.sizes.sum()), len(index))
  bounds = tfds_internals.shard_bounds(len(index), num_shards)
  return plan.deal(
      source.split, source.reader(), index, source.labels,
      [end - start for start, end in bounds], shuffled=True,
  )


class TfdsLayout:
  """The shard files of a TFDS build of this builder."""

  def __init__(self, builder: tfds.core.GeneratorBasedBuilder, splits: Iterable[str]):
    """The layout of `builder`'s shards of `splits`; pickles without the builder."""
    self._templates = {
        split: tfds_internals.filename_template(builder, split) for split in splits
    }
    self._writer = tfds_internals.example_writer(builder)
    self._file_format = self._writer.file_format.value
    self.identity = f'tfds {builder.name} {builder.version} {self._file_format}'
    if self._file_format != _TFRECORD:
      self.record_size = None  # TFDS's writer frames it: not in place.

  def __getstate__(self) -> dict[str, object]:
    # Workers are given their shards' names (`shard_writer.ShardWriter`) and
    # frame TFRecords themselves: without TFDS's objects they import no TFDS.
    state = dict(self.__dict__, _templates=None)
    if self._file_format == _TFRECORD:
      state['_writer'] = None
    return state

  def shard_path(self, task: plan.ShardTask) -> str:
    return tfds_internals.shard_path(
        self._templates[task.split], task.index, task.num_shards
    )

  def encode(self, image: bytes, label: int, file_name: str) -> bytes:
    return example_encoding.serialize_features(self.features(image, label, file_name))

  def features(
      self, image: bytes | example_encoding.ByteCount, label: int, file_name: str
  ) -> dict[str, object]:
    """The features of one record (`image` a `ByteCount` for its size only)."""
    return example_encoding.features(image, label, file_name)

  def record_size(
      self, stored_size: int, height: int, width: int, label: int, file_name: str
  ) -> int:
    """len(encode(...)) of an image of `stored_size` bytes."""
    del height, width  # Not in the record.
    return example_encoding.serialized_size(
        self.features(example_encoding.ByteCount(stored_size), label, file_name)
    )

  def write(self, path: str, records: Iterator[tuple[str, bytes]]) -> None:
    if self._file_format == _TFRECORD:
      tfrecords.write(path, (record for _, record in records))
    else:
      self._writer.write(path, records)

  def companions(self, path: str) -> list[str]:
    del path  # TFDS's shards are single files.
    return []
