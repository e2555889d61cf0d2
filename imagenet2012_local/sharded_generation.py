"""Writing each split shard by shard, every shard written once, in parallel.

TFDS's generator path sends every example through its shuffler, which spills
the whole dataset to temporary files before it writes the first shard. Here
the order is decided up front instead: the archive's index (image byte
ranges, sorted by file name) is put in a seeded random order and dealt into
contiguous shards, and each shard is written by one worker that reads its
images by offset. So there is no spill, memory holds one image per worker, and
the output is globally shuffled and the same on every build.

Writing is bound by disk and memory bandwidth, not by the CPU: one process
writes as fast as several on one machine, while the MD5 check runs on a second
core. `write_shard` is the unit of work, run here one shard after another or
in parallel by Beam workers: anything with `map`'s signature (`MapFn`) runs it.
"""

from __future__ import annotations

import dataclasses
import os
import random
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

_T = TypeVar('_T')
_R = TypeVar('_R')

SHUFFLE_SEED = 2012

# Applies a function to each item, results in item order, like builtin `map`.
MapFn = Callable[[Callable[[_T], _R], Iterable[_T]], Iterable[_R]]



class DuplicateImagesError(ValueError):
  """Two images of one split have the same file name."""


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
        f' {", ".join(duplicates[:5])}. Each image must appear once per split:'
        ' use the official archive, or remove the duplicates when re-packing.'
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

  def __init__(self, example_writer: writer_lib.ExampleWriter):
    self._example_writer = example_writer

  def write_shard(self, task: ShardTask) -> ShardResult:
    """Writes one shard file, reading its images from the archive by offset."""
    fixed: dict[str, str] = {}
    count = 0

    def serialized_examples() -> Iterator[tuple[str, bytes]]:
      nonlocal count
      with epath.Path(task.archive).open('rb') as archive:
        for member, label in zip(task.members, task.labels):
          data, reason = image_fixes.fix_image(
              archives.read_member(archive, member)
          )
          if reason:
            fixed[member.file_name] = reason
          count += 1
          yield member.file_name, example_encoding.serialize(
              data, label, member.file_name
          )

    if self._example_writer.file_format == file_adapters.FileFormat.TFRECORD:
      tfrecords.write(task.path, (record for _, record in serialized_examples()))
    else:
      self._example_writer.write(task.path, serialized_examples())
    return ShardResult(
        split=task.split,
        index=task.index,
        num_examples=count,
        num_bytes=epath.Path(task.path).stat().length,
        fixed_images=fixed,
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
