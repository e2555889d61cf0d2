"""The classic ImageNet TFRecord layout that ResNet input pipelines read.

The TPU ResNet input pipeline, Intel's model-zoo ResNet50 scripts and MLPerf's
reference read the folder TensorFlow's old conversion script wrote. This
module defines that folder, for whatever writes it (`classic_build` straight
from the archives, through `ClassicLayout`; `tpu_export` from a prepared
dataset):

- Files: `<split>-%05d-of-%05d` (shard index, shard count), e.g.
  `train-00000-of-01024`; `DEFAULT_SHARDS` gives the counts the pipelines
  expect. Records are spread evenly: shard sizes differ by at most one, the
  larger ones first (`shard_sizes`). An empty shard is an empty file, which is
  a valid TFRecord file.
- Each file is a TFRecord file (`tfrecords`) of serialized
  `tf.train.Example`s (`make_record`) with one value per key:
  `image/encoded` (the JPEG bytes), `image/format` (`JPEG`),
  `image/filename`, `image/class/label` (1-based over the sorted wnids, -1
  without a label), `image/class/synset` (the wnid, empty without a label),
  `image/height` and `image/width` (from the JPEG header), `image/colorspace`
  (`RGB`) and `image/channels` (3).
- DALI index files, optional: `dali_idx/<file name>.idx` (`dali_index_path`),
  the format of DALI's `tfrecord2idx`: one text line per record, in file
  order, `<offset> <size>\\n`, where `offset` is the byte offset of the
  record's framing in the TFRecord file and `size` its length including the
  16 framing bytes, in decimal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from imagenet2012_local import errors
from imagenet2012_local.layouts import example_encoding
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.layouts import tfrecords
from imagenet2012_local.engine import plan
from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import source as source_lib

DEFAULT_SHARDS = {'train': 1024, 'validation': 128, 'test': 256}
DALI_INDEX_DIR = 'dali_idx'


class NotJpegError(errors.Imagenet2012LocalError, ValueError):
  """An image to write is not a JPEG whose header can be read."""


def shard_name(split: str, index: int, num_shards: int) -> str:
  """The file name of shard `index` (0-based) of `num_shards`."""
  return f'{split}-{index:05d}-of-{num_shards:05d}'


def shard_sizes(total: int, num_shards: int) -> list[int]:
  """How many of `total` records each shard holds: sizes differ by <= 1."""
  return [
      total // num_shards + (k < total % num_shards) for k in range(num_shards)
  ]


def plan_split(
    source: source_lib.Source,
    index: archive_index.ArchiveIndex,
    num_shards: Mapping[str, int],
) -> list[plan.ShardTask]:
  """The classic layout's shards of a split: `num_shards[split]` of them,
  sizes differing by at most one (`shard_sizes`), shards beyond the images
  empty. Train in the TFDS build's seeded random order; the other splits in
  file-name order across shards, as the old conversion script wrote them.

  Raises:
    plan.DuplicateImagesError: two images share a file name.
  """
  return plan.deal(
      source.split, source.reader(), index, source.labels,
      shard_sizes(len(index), num_shards[source.split]),
      shuffled=source.split == archive_facts.TRAIN.split,
  )


def dali_index_path(output_dir: Path, shard_file_name: str) -> Path:
  """Where the DALI index of the shard `shard_file_name` goes."""
  return output_dir / DALI_INDEX_DIR / f'{shard_file_name}.idx'


def make_record(
    image: bytes, label: int, file_name: str, class_names: Sequence[str]
) -> bytes:
  """One serialized `tf.train.Example` with the classic keys.

  Args:
    image: The JPEG bytes, written as they are.
    label: 0-based index into `class_names`, or -1 for an unlabelled image.
    file_name: The image's file name, e.g. `n01440764_10026.JPEG`.
    class_names: The wnids, sorted (the dataset's label names).

  Returns:
    The bytes of `SerializeToString(deterministic=True)` of the Example.

  Raises:
    NotJpegError: `image` is not a JPEG with a readable header.
  """
  header = image_fixes.read_jpeg_header(image)
  if header is None:
    raise NotJpegError(errors.two_lines(
        f'{file_name} is not stored as a JPEG (no readable JPEG header)',
        'The classic layout holds JPEGs only: convert the image to a JPEG'
        ' first (imagenet2012_local.engine.image_fixes.fix_image does).',
    ))
  return example_encoding.serialize_features(
      _features(image, header.height, header.width, label, file_name, class_names)
  )


def _features(
    image: bytes | example_encoding.ByteCount,
    height: int,
    width: int,
    label: int,
    file_name: str,
    class_names: Sequence[str],
) -> dict[str, object]:
  """The classic keys of one image (see `make_record`)."""
  # Classic 1-based labels over the sorted wnids; the test split has none.
  if label < 0:
    label, synset = -1, b''
  else:
    label, synset = label + 1, class_names[label].encode()
  return {
      'image/encoded': image,
      'image/format': b'JPEG',
      'image/filename': file_name.encode(),
      'image/class/label': label,
      'image/class/synset': synset,
      'image/height': height,
      'image/width': width,
      'image/colorspace': b'RGB',
      # What pipelines decode to (decode_jpeg(channels=3)); the few grayscale
      # JPEGs keep their bytes, as in the TFDS dataset.
      'image/channels': 3,
  }


def write_shard(
    path: Path, records: Iterable[bytes], dali_index: Path | None = None
) -> int:
  """Writes one TFRecord file and, if `dali_index` is given, its DALI index.

  Returns:
    The number of records written.
  """
  with tfrecords.Writer(path) as writer:
    lines = [
        f'{writer.write(record)} {len(record) + tfrecords.FRAMING_BYTES}\n'
        for record in records
    ]
  if dali_index is not None:
    dali_index.parent.mkdir(exist_ok=True)
    dali_index.write_text(''.join(lines))
  return len(lines)


class ClassicLayout:
  """This layout as the build engine writes it (a `shard_writer.Layout`)."""

  def __init__(
      self, output_dir: Path, class_names: Sequence[str], dali_index: bool
  ):
    """Shards go into `output_dir`, with DALI indexes if `dali_index`.

    Args:
      output_dir: The folder of the shard files.
      class_names: The wnids, sorted: label N is class_names[N].
      dali_index: Also write a DALI index per shard.
    """
    self._output_dir = output_dir
    self._class_names = tuple(class_names)
    self._dali_index = dali_index
    self.identity = f'classic dali_index={dali_index}'
    if dali_index:
      self.record_size = None  # DALI's indexes are written by `write` only.

  def shard_path(self, task: plan.ShardTask) -> str:
    name = shard_name(task.split, task.index, task.num_shards)
    return str(self._output_dir / name)

  def encode(self, image: bytes, label: int, file_name: str) -> bytes:
    # The engine's images are fixed, so always JPEGs: no NotJpegError.
    return make_record(image, label, file_name, self._class_names)

  def record_size(
      self, stored_size: int, height: int, width: int, label: int, file_name: str
  ) -> int:
    """len(encode(...)) of a JPEG of `stored_size` bytes and that size."""
    return example_encoding.serialized_size(_features(
        example_encoding.ByteCount(stored_size), height, width, label,
        file_name, self._class_names,
    ))

  def write(self, path: str, records: Iterator[tuple[str, bytes]]) -> None:
    index = self.companions(path)
    write_shard(
        Path(path), (record for _, record in records), Path(index[0]) if index else None
    )

  def companions(self, path: str) -> list[str]:
    """The shard's DALI index, if the layout has them."""
    if not self._dali_index:
      return []
    return [str(dali_index_path(Path(path).parent, Path(path).name))]


def pipeline_parse_spec() -> dict[str, Any]:
  """The features classic ResNet input pipelines parse from these records.

  Pass it to `tf.io.parse_single_example` to read the files as the TPU ResNet
  and MLPerf reference pipelines do. Keys missing from a record get their
  default: the pipelines ask for a class text and boxes, which these records
  leave out (the boxes are variable-length, so they parse as empty).
  TensorFlow is imported here only, as writing the files does not need it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  boxes = {
      f'image/object/bbox/{side}': tf.io.VarLenFeature(tf.float32)
      for side in ('xmin', 'ymin', 'xmax', 'ymax')
  }
  return {
      'image/encoded': tf.io.FixedLenFeature((), tf.string, ''),
      'image/class/label': tf.io.FixedLenFeature((), tf.int64, -1),
      'image/class/text': tf.io.FixedLenFeature((), tf.string, ''),
      **boxes,
      'image/object/class/label': tf.io.VarLenFeature(tf.int64),
  }
