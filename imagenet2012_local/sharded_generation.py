"""Writing each split shard by shard, every shard written once.

TFDS's generator path sends every example through its shuffler, which spills
the whole dataset to temporary files before it writes the first shard. Here
the order is decided up front instead: the archive's index (image byte
ranges, sorted by file name) is put in a seeded random order and dealt into
contiguous shards, and each shard is written in one go, reading its images by
offset. So there is no spill, memory holds one image per shard being written,
and the output is globally shuffled and the same on every build.

Writing is bound by disk and memory bandwidth, not by the CPU: one process
writes as fast as several on one machine, while the archive digests are
computed on a second core. `write_shard` is the unit of work, run here one
shard after another or in parallel by Beam workers: anything with `map`'s
signature (`MapFn`) runs it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from etils import epath
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core import naming
from tensorflow_datasets.core import splits as splits_lib
from tensorflow_datasets.core import writer as writer_lib
from tensorflow_datasets.core.utils import shard_utils
from tensorflow_datasets.core.utils import tqdm_utils

from imagenet2012_local import archives
from imagenet2012_local import example_encoding
from imagenet2012_local import image_fixes
from imagenet2012_local import tfrecords
from imagenet2012_local import verification

_T = TypeVar('_T')
_R = TypeVar('_R')

SHUFFLE_SEED = 2012

# Applies a function to each item, results in item order, like builtin `map`.
MapFn = Callable[[Callable[[_T], _R], Iterable[_T]], Iterable[_R]]

# Free space wanted beyond the archives' size: re-encoded images and TFRecord
# framing make the output a little bigger than the input.
_SPACE_MARGIN_FRACTION = 0.02
_SPACE_MARGIN_BYTES = 64 << 20
_GB = 1e9


class DuplicateImagesError(ValueError):
  """Two images of one split have the same file name."""


class DiskSpaceError(OSError):
  """The data dir has, or had, too little free space for the output."""


@dataclasses.dataclass(frozen=True)
class ShardTask:
  """One output shard: which images, from where, in which order."""

  split: str
  index: int
  path: str
  archive: str
  members: Sequence[archives.Member]
  labels: Sequence[int]  # Class indices; -1 for the unlabeled test split.


@dataclasses.dataclass(frozen=True)
class ShardResult:
  """What writing one shard produced."""

  split: str
  index: int
  num_examples: int
  num_bytes: int
  fixed_images: dict[str, str]  # file name -> why it was re-encoded
  # file name -> why no decoder reads it (only with skip_bad_images).
  skipped_images: dict[str, str] = dataclasses.field(default_factory=dict)


def plan_split(
    split: str,
    archive: epath.PathLike,
    members: Sequence[archives.Member],
    label_of: Callable[[archives.Member], int],
    filename_template: naming.ShardedFileTemplate,
) -> list[ShardTask]:
  """Deals a split's images into shards in a seeded random order.

  Sorting by file name first makes the order independent of how the tar
  happens to list its members. The shard count follows TFDS's own policy.

  Raises:
    DuplicateImagesError: two images share a file name.
  """
  ordered = sorted(members, key=lambda m: m.file_name)
  duplicates = sorted(
      {a.file_name for a, b in zip(ordered, ordered[1:]) if a.file_name == b.file_name}
  )
  if duplicates:
    raise DuplicateImagesError(
        f'{archive} holds {len(duplicates):,} file names more than once, e.g.'
        f' {", ".join(duplicates[:5])}; each image must appear once per split.\n'
        'Use the official archive, or remove the duplicates when re-packing it.'
    )
  random.Random(SHUFFLE_SEED).shuffle(ordered)
  labels = [label_of(m) for m in ordered]  # Label errors surface before writing.
  num_shards = shard_utils.ShardConfig.calculate_number_shards(
      total_size=sum(m.size for m in ordered), num_examples=len(ordered)
  )
  template = filename_template.replace(split=split)
  bounds = [0, *shard_utils.get_shard_boundaries(len(ordered), num_shards)]
  return [
      ShardTask(
          split=split,
          index=i,
          path=os.fspath(
              template.sharded_filepath(shard_index=i, num_shards=num_shards)
          ),
          archive=os.fspath(archive),
          members=ordered[start:end],
          labels=labels[start:end],
      )
      for i, (start, end) in enumerate(zip(bounds, bounds[1:]))
  ]


class ShardWriter:
  """Writes shards in the dataset's file format: TFRecord directly, others via TFDS."""

  def __init__(
      self, example_writer: writer_lib.ExampleWriter, skip_bad_images: bool = False
  ):
    """Writes with `example_writer`'s format.

    Args:
      example_writer: the builder's writer (its file format is used).
      skip_bad_images: leave out images no decoder reads, instead of failing.
    """
    self._example_writer = example_writer
    self._skip_bad_images = skip_bad_images

  def write_shard(self, task: ShardTask) -> ShardResult:
    """Writes one shard file, reading its images from the archive by offset.

    Raises:
      DiskSpaceError: the disk filled up.
    """
    fixer = image_fixes.ImageFixer(task.archive, self._skip_bad_images)
    count = 0

    def serialized_examples() -> Iterator[tuple[str, bytes]]:
      nonlocal count
      with epath.Path(task.archive).open('rb') as archive:
        for member, label in zip(task.members, task.labels):
          data = fixer(member.file_name, archives.read_member(archive, member))
          if data is None:
            continue
          count += 1
          yield member.file_name, example_encoding.serialize(
              data, label, member.file_name
          )

    try:
      if self._example_writer.file_format == file_adapters.FileFormat.TFRECORD:
        tfrecords.write(task.path, (record for _, record in serialized_examples()))
      else:
        self._example_writer.write(task.path, serialized_examples())
    except OSError as e:
      if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise
      # Names the dataset's folder: the shard's temporary one goes away.
      dataset_dir = os.path.dirname(os.path.dirname(task.path))
      raise DiskSpaceError(
          f'The disk filled up while writing {task.path} ({e.strerror});'
          ' nothing was published.\n' + _free_space_advice(dataset_dir)
      ) from e
    return ShardResult(
        split=task.split,
        index=task.index,
        num_examples=count,
        num_bytes=epath.Path(task.path).stat().length,
        fixed_images=fixer.fixed,
        skipped_images=fixer.skipped,
    )


def check_free_space(data_dir: epath.PathLike, archive_bytes: int) -> None:
  """Fails early when `data_dir` cannot hold the output of `archive_bytes`.

  The output is about as big as the archives it comes from. Only local dirs
  are checked (cloud storage has no free-space figure).

  Raises:
    DiskSpaceError: too little free space.
  """
  if not verification.is_local(data_dir):
    return
  needed = int(archive_bytes * (1 + _SPACE_MARGIN_FRACTION)) + _SPACE_MARGIN_BYTES
  free = shutil.disk_usage(data_dir).free
  if free < needed:
    raise DiskSpaceError(
        f'Not enough free disk space under {data_dir}: the build needs about'
        f' {_size(needed)} (the archives take {_size(archive_bytes)}), and'
        f' {_size(free)} are free.\n' + _free_space_advice(data_dir)
    )


def _size(num_bytes: int) -> str:
  if num_bytes >= _GB:
    return f'{num_bytes / _GB:,.1f} GB'
  return f'{num_bytes / 1e6:,.1f} MB'


def _free_space_advice(data_dir: str | os.PathLike[str]) -> str:
  return (
      f'Free up space under {data_dir} (the output is about as big as the'
      ' archives), or build elsewhere with --data_dir=<a folder on a bigger'
      ' disk>.'
  )


def split_info(
    split: str,
    results: Sequence[ShardResult],
    filename_template: naming.ShardedFileTemplate,
) -> splits_lib.SplitInfo:
  """The TFDS split info of a split's written shards."""
  written = sorted((r for r in results if r.split == split), key=lambda r: r.index)
  return splits_lib.SplitInfo(
      name=split,
      shard_lengths=[r.num_examples for r in written],
      num_bytes=sum(r.num_bytes for r in written),
      filename_template=filename_template.replace(split=split),
  )


def progress_map(
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    desc: str,
    unit: str,
    map_fn: MapFn = map,
) -> Iterator[_R]:
  """`map_fn(fn, items)` with a progress bar (rate, ETA) over the items."""
  return iter(
      tqdm_utils.tqdm(
          map_fn(fn, items), total=len(items), desc=desc, unit=unit, leave=False
      )
  )


def write_shards(
    writer: ShardWriter,
    tasks: Sequence[ShardTask],
    map_fn: MapFn = map,
    on_result: Callable[[ShardResult], None] = lambda result: None,
) -> list[ShardResult]:
  """Writes all shards through `map_fn`; `on_result` runs after each one."""
  results = []
  for result in progress_map(
      writer.write_shard, tasks, 'Writing shards', ' shards', map_fn
  ):
    results.append(result)
    on_result(result)
  return results
