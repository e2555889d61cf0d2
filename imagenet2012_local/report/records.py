"""The stored records of a prepared split, read in order, images left encoded."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import tensorflow_datasets as tfds

_ARRAY_RECORD_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class Example:
  """One stored record, the image left encoded."""

  file_name: str
  label: int  # -1 for the unlabelled test split.
  data: bytes


def read_records(
    builder: tfds.core.DatasetBuilder, split: str
) -> Iterator[Example]:
  """The split's records in stored order, images not decoded."""
  skip = {'image': tfds.decode.SkipDecoding()}
  if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    # TFDS cannot open ArrayRecord with tf.data; read it in index batches.
    source = builder.as_data_source(split=split, decoders=skip)
    for start in range(0, len(source), _ARRAY_RECORD_BATCH):
      stop = min(start + _ARRAY_RECORD_BATCH, len(source))
      yield from map(_example, source.__getitems__(range(start, stop)))
  else:
    dataset = builder.as_dataset(
        split=split, decoders=skip, shuffle_files=False
    )
    yield from map(_example, tfds.as_numpy(dataset))


def _example(record: Mapping[str, object]) -> Example:
  file_name = record['file_name']  # bytes from both readers; str is accepted.
  return Example(
      file_name=(
          file_name.decode() if isinstance(file_name, bytes) else file_name
      ),
      label=int(record['label']),
      data=bytes(record['image']),
  )
