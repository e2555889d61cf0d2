"""Writing planned shards: read by offset, fix by content, encode, write.

`ShardWriter.write_shard` is the unit of work, run one shard after another
in the build's process, or in parallel by worker processes (`worker_pool`)
or Beam workers: anything with `map`'s signature (`MapFn`) runs it. What the
files look like is the `Layout`'s business (the TFDS layout in
`tfds_layout`, the classic one in `classic_layout`); reading, fixing and
checking are written once, here.

Each writer keeps many reads in flight (`image_reads`); a worker per core
keeps the disk busy while the build's process computes the archive digests.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

from etils import epath

from imagenet2012_local.gate import disk_space
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.engine import plan
from imagenet2012_local.engine import resume
from imagenet2012_local import tfds_internals

_T = TypeVar('_T')
_R = TypeVar('_R')

# Applies a function to each item, results in item order, like builtin `map`.
MapFn = Callable[[Callable[[_T], _R], Iterable[_T]], Iterable[_R]]


class Layout(Protocol):
  """How shards are named, what a record holds, and how a file is written.

  A layout that frames its records as TFRecords may also have
  `record_size(stored_size, height, width, label, file_name) -> int`: the
  length `encode` gives for an image of that many bytes and that JPEG size,
  so that its shards can be written in place from archives read in order
  (`in_order_writer`); None or absent, they are written by offset only.
  """

  # Names the layout and its settings (e.g. file format) for `resume.plan_key`:
  # a kept shard of another layout is never reused.
  identity: str

  def shard_path(self, task: plan.ShardTask) -> str:
    """Where the shard of `task` is written."""

  def encode(self, image: bytes, label: int, file_name: str) -> bytes:
    """The record of one image (already fixed) and its label (-1: none)."""

  def write(self, path: str, records: Iterator[tuple[str, bytes]]) -> None:
    """Writes (file name, record) pairs as one shard file at `path`."""

  def companions(self, path: str) -> list[str]:
    """The files `write` puts beside the shard at `path` (e.g. an index)."""


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


def fixed_examples(
    task: plan.ShardTask, fixer: image_fixes.ImageFixer
) -> Iterator[tuple[str, bytes, int]]:
  """(file name, image bytes fixed by content, label) of a task's images, in
  order, read by its reader; images the fixer skips are left out."""
  for name, data, label in task.examples():
    fixed = fixer(name, data)
    if fixed is not None:
      yield name, fixed, label


class ShardWriter:
  """Writes planned shards in a layout, through a kept-shards folder."""

  def __init__(
      self,
      layout: Layout,
      kept: resume.KeptShards,
      skip_bad_images: bool,
      tasks: Sequence[plan.ShardTask],
  ):
    """Writes the shards of `tasks` in `layout`.

    Args:
      layout: names, encodes and writes the shard files.
      kept: where shards are written and kept until the whole build has
        succeeded, so that an interrupted build resumes (see `resume`).
      skip_bad_images: leave out images no decoder reads, instead of failing.
      tasks: every shard this writer may write; their file names and plan
        keys are computed here, once, in the build's process: a layout need
        not name shards where they are written (the TFDS layout's names take
        TFDS, which workers need not import), and the build and its workers
        use the same keys.
    """
    self._layout = layout
    self._skip_bad_images = skip_bad_images
    self._kept = kept
    self._kept_keys = {
        (task.split, task.index): (
            os.path.basename(layout.shard_path(task)),
            resume.plan_key(task, layout.identity, skip_bad_images),
        )
        for task in tasks
    }

  def kept_key(self, task: plan.ShardTask) -> tuple[str, str]:
    """The kept-shard name and plan key of `task` (see `resume`)."""
    return self._kept_keys[task.split, task.index]

  def write_shard(self, task: plan.ShardTask) -> ShardResult:
    """Writes one shard file, reading its images from the archive by offset;
    a kept shard of the same plan is reused instead.

    Raises:
      disk_space.DiskSpaceError: the disk filled up.
    """
    name, key = self.kept_key(task)
    kept = self._kept.reusable(name, key)
    if kept is not None:
      return ShardResult(**kept.result)
    # Names the folder that holds the kept shards and the output.
    with disk_space.full_disk_reported(
        self._kept.folder / name, self._kept.folder.parent
    ):
      return self._write_new_shard(task, name, key)

  def _write_new_shard(self, task: plan.ShardTask, name: str, key: str) -> ShardResult:
    """Writes the shard of `task` into the kept-shards folder as `name`."""
    path = os.fspath(self._kept.partial_path(name))
    fixer = image_fixes.ImageFixer.of(task.reader, self._skip_bad_images)
    count = 0

    def records() -> Iterator[tuple[str, bytes]]:
      nonlocal count
      for file_name, data, label in fixed_examples(task, fixer):
        count += 1
        yield file_name, self._layout.encode(data, label, file_name)

    try:
      self._layout.write(path, records())
      result = ShardResult(
          split=task.split,
          index=task.index,
          num_examples=count,
          num_bytes=epath.Path(path).stat().length,
          fixed_images=fixer.fixed,
          skipped_images=fixer.skipped,
      )
      self._kept.finish(
          name, key, dataclasses.asdict(result), self._layout.companions(path)
      )
    except BaseException:
      epath.Path(path).unlink(missing_ok=True)  # Of no use to a rerun.
      raise
    return result

  def publish(self, tasks: Sequence[plan.ShardTask]) -> None:
    """Puts the kept shards of `tasks` where the layout wants them."""
    for task in tasks:
      name, _ = self.kept_key(task)
      destination = self._layout.shard_path(task)
      kept = os.fspath(self._kept.folder / name)
      for source, target in [
          (kept, destination),
          *zip(self._layout.companions(kept), self._layout.companions(destination)),
      ]:
        self._kept.publish(source, target)


def progress_map(
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    desc: str,
    unit: str,
    map_fn: MapFn = map,
) -> Iterator[_R]:
  """`map_fn(fn, items)` with a progress bar (rate, ETA) over the items."""
  return iter(
      tfds_internals.progress_bar(
          map_fn(fn, items), total=len(items), desc=desc, unit=unit
      )
  )


def write_shards(
    writer: ShardWriter,
    tasks: Sequence[plan.ShardTask],
    map_fn: MapFn = map,
    on_result: Callable[[plan.ShardTask, ShardResult], None] = lambda *_: None,
) -> list[ShardResult]:
  """Writes all shards through `map_fn`; `on_result(task, result)` runs here
  after each one, in task order."""
  results = []
  for task, result in zip(tasks, progress_map(
      writer.write_shard, tasks, 'Writing shards', ' shards', map_fn
  )):
    results.append(result)
    on_result(task, result)
  return results
