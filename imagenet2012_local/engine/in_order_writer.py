"""Writing every shard from one read of each archive in order.

Reading the images by offset (`shard_writer`) costs a random read per image:
~1.33 M for ImageNet, an hour of seeks on a disk that serves a few hundred a
second. Here each archive is read once more, in order, and each record is
written at its place in its shard. That place is known before a byte is
read: the index read in order noted each image's stored size and JPEG size,
so each record's size follows from the plan, and each shard's layout from
those (`in_order_reads` plans the read). The shards' bytes are those
`shard_writer` writes.

Whole blocks are written in place and the partial blocks at each record's
ends kept until every record is written (`block_writes`), so no write makes
the kernel read a block back; how far the writing got is recorded every GB
(`in_order_progress`), so a killed build goes on from there.

On disk, in the kept-shards folder (`resume`), besides those two modules'
files: `<shard file name>.in-order`, each shard being written, sized in
advance; renamed to `<shard file name>.partial` and finished as any other
(`resume.KeptShards.finish`) once every block is written.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import resource
from collections.abc import Callable, Sequence

import numpy as np

from imagenet2012_local import errors
from imagenet2012_local import settings
from imagenet2012_local import tfds_internals
from imagenet2012_local.engine import block_writes
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.engine import in_order_progress
from imagenet2012_local.engine import in_order_reads
from imagenet2012_local.engine import plan
from imagenet2012_local.engine import resume
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.layouts import tfrecords
from imagenet2012_local.sources import tar_reader

_SPARE_FILES = 64 + block_writes.BUCKETS  # Descriptors left for the rest.


@dataclasses.dataclass
class _Shard:
  """One shard being written in place."""

  task: plan.ShardTask
  place: int  # In the build's list of tasks.
  name: str
  key: str
  fd: int
  record_sizes: np.ndarray  # Framed size of each record, in writing order.
  fixer: image_fixes.ImageFixer
  count: int = 0  # Records written.

  @property
  def size(self) -> int:
    """The shard file's planned bytes."""
    return int(self.record_sizes.sum())


def usable(layout: shard_writer.Layout, tasks: Sequence[plan.ShardTask]) -> bool:
  """Whether `layout` can be written in place for `tasks`: it frames its
  records as TFRecords and sizes them (`record_size`; None or absent where
  it cannot), their archives were read in order (content columns), and
  every shard can stay open at once."""
  if not tasks or getattr(layout, 'record_size', None) is None:
    return False
  if any(task.split_index.stored_sizes is None for task in tasks):
    return False
  return _enough_descriptors(len(tasks) + _SPARE_FILES)


def _enough_descriptors(count: int) -> bool:
  """Raises this process's open-file limit to `count` if it is lower."""
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft >= count:
    return True
  if hard != resource.RLIM_INFINITY and hard < count:
    return False
  resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))
  return True


def write_in_order(
    writer: shard_writer.ShardWriter,
    layout: shard_writer.Layout,
    kept: resume.KeptShards,
    skip_bad_images: bool,
    tasks: Sequence[plan.ShardTask],
    on_result: Callable[[plan.ShardTask, shard_writer.ShardResult], None],
) -> list[shard_writer.ShardResult]:
  """Writes the shards of `tasks` (see the module docstring); finished
  shards kept by an interrupted build are reused, and an interrupted write
  in order goes on from its last checkpoint. `on_result` runs for each
  shard, in task order.

  Raises:
    image_fixes.UndecodableImageError: an image no decoder reads, unless
      `skip_bad_images`.
    tar_reader.ArchiveError: an archive changed since it was indexed.
  """
  results: dict[int, shard_writer.ShardResult] = {}
  todo = []
  for place, task in enumerate(tasks):
    name, key = writer.kept_key(task)
    reused = kept.reusable(name, key)
    if reused is not None:
      results[place] = shard_writer.ShardResult(**reused.result)
    else:
      todo.append((place, task, name, key))
  if todo:
    for shard in _write(todo, layout, kept, skip_bad_images):
      result = shard_writer.ShardResult(
          split=shard.task.split,
          index=shard.task.index,
          num_examples=shard.count,
          num_bytes=shard.size,
          fixed_images=shard.fixer.fixed,
          skipped_images=shard.fixer.skipped,
      )
      _path(kept, shard.name).replace(kept.partial_path(shard.name))
      kept.finish(shard.name, shard.key, dataclasses.asdict(result))
      results[shard.place] = result
  ordered = [results[place] for place in range(len(tasks))]
  for task, result in zip(tasks, ordered):
    on_result(task, result)
  return ordered


def _path(kept: resume.KeptShards, name: str):
  return kept.folder / f'{name}.in-order'


def _write(
    todo: list[tuple[int, plan.ShardTask, str, str]],
    layout: shard_writer.Layout,
    kept: resume.KeptShards,
    skip_bad_images: bool,
) -> list[_Shard]:
  """Writes the shards of `todo` whole, going on from a checkpoint."""
  for _, _, name, _ in todo:
    kept.partial_path(name)  # Makes the folder; drops a stale record.
  block = block_writes.block_size(kept.folder)
  record_key = in_order_progress.key([(name, key) for _, _, name, key in todo], block)
  progress = in_order_progress.load(
      kept.folder, record_key, [_path(kept, name) for _, _, name, _ in todo]
  )
  shards = []
  try:
    for place, task, name, key in todo:
      shards.append(_open(
          kept, place, task, name, key, layout, skip_bad_images, progress is None
      ))
    if progress is not None:
      for shard, (count, fixed, skipped) in zip(shards, progress.shards):
        shard.count = count
        shard.fixer.fixed.update(fixed)
        shard.fixer.skipped.update(skipped)
    writes = block_writes.BlockWrites(
        kept.folder, [s.fd for s in shards], [s.size for s in shards], block,
        progress and progress.edges,
    )
    done = progress.done if progress else {}

    def checkpoint() -> None:
      edges = writes.flush()
      os.sync()  # The shards and edge files first, then the record of them.
      in_order_progress.save(kept.folder, record_key, in_order_progress.Progress(
          done, edges, [(s.count, s.fixer.fixed, s.fixer.skipped) for s in shards]
      ))

    try:
      by_archive = collections.defaultdict(list)
      for number, shard in enumerate(shards):
        by_archive[shard.task.reader.name].append(number)
      for archive, numbers in reversed(by_archive.items()):
        _write_archive(
            archive, shards, numbers, layout, writes, done, checkpoint
        )
      writes.write_blocks()
    except BaseException:
      writes.close(remove=False)  # Kept for the rerun, with the record.
      raise
    writes.close(remove=True)
    in_order_progress.remove(kept.folder)
  finally:
    for shard in shards:
      os.close(shard.fd)
  return shards


def _open(
    kept: resume.KeptShards,
    place: int,
    task: plan.ShardTask,
    name: str,
    key: str,
    layout: shard_writer.Layout,
    skip_bad_images: bool,
    fresh: bool,
) -> _Shard:
  """The shard of `task`, its file at its planned size: new if `fresh`."""
  flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0)
  fd = os.open(_path(kept, name), flags, 0o666)
  shard = _Shard(
      task, place, name, key, fd, in_order_reads.record_sizes(task, layout),
      image_fixes.ImageFixer.of(task.reader, skip_bad_images),
  )
  os.ftruncate(fd, shard.size)
  return shard


def _write_archive(
    archive: str,
    shards: list[_Shard],
    numbers: list[int],
    layout: shard_writer.Layout,
    writes: block_writes.BlockWrites,
    done: dict[str, int],
    checkpoint: Callable[[], None],
) -> None:
  """Reads `archive` in order (`in_order_reads`) from its first image not
  yet written, writing each planned image's record in place;
  `done[archive]` counts them, in the order they are read."""
  reads = in_order_reads.ArchiveReads.of(
      archive,
      [(number, shards[number].task, shards[number].record_sizes) for number in numbers],
  )
  unsaved = 0  # Bytes written since the last checkpoint.
  with tfds_internals.progress_bar(
      total=os.path.getsize(archive), desc='Writing shards in order', unit='B',
      unit_scale=True,
  ) as bar, contextlib.closing(reads.images(
      done.setdefault(archive, 0), lambda piece: bar.update(len(piece))
  )) as images:
    for k, data in images:
      shard = shards[reads.owners[k]]
      name = reads.index.file_name(reads.rows[k])
      fixed = shard.fixer(name, data)
      if fixed is not None:
        record = layout.encode(fixed, int(reads.labels[k]), name)
        framed = b''.join((tfrecords.frame_head(record), record, tfrecords.frame_tail(record)))
        if len(framed) != reads.sizes[k]:
          raise _changed(archive, name)
        writes.place(int(reads.owners[k]), int(reads.places[k]), framed)
        shard.count += 1
        unsaved += len(framed)
      done[archive] += 1
      if unsaved >= in_order_progress.CHECKPOINT_BYTES:
        checkpoint()
        unsaved = 0


def _changed(archive: str, name: str) -> tar_reader.ArchiveError:
  return tar_reader.ArchiveError(errors.two_lines(
      f'{archive}: image {name} is not what it was when the archive was'
      ' indexed: the file changed',
      'Run the build again (it indexes the archive anew); if it persists,'
      f' set {settings.READ_ORDER_ENV_VAR}=by-offset.',
  ))
