"""Writing every shard from one read of each archive in order.

Reading the images by offset (`shard_writer`) costs a random read per image:
~1.33 M for ImageNet, an hour of seeks on a disk that serves a few hundred a
second. Here each archive is read once more, in order (`direct_reads`,
through `in_order_index.InOrderFile`), and each record is written at its
place in its shard. That place is known before a byte is read: the index
read in order noted each image's stored size and JPEG size
(`archive_index.ArchiveIndex.stored_sizes`), so each record's size follows
from the plan (`Layout.record_size`), and each shard's layout from those.
The shards' bytes are those `shard_writer` writes.

A write into part of a file block whose page was written back and evicted
makes the kernel read that block first: one random read per record boundary,
the very cost this avoids (2 GB of ~110 KB records in random order, 512 MB of
page cache: ~10,000 block reads for 18,000 records). So only whole blocks
are written in place. The partial blocks at each record's two ends (about
one block a record, ~4 % of the bytes) are appended to one of `_BUCKETS`
edge files, by shard, and once every record is written each edge file is
read back and its blocks written whole.

On disk, in the kept-shards folder (`resume`):
- `<shard file name>.partial`: each shard, sized in advance, written in
  place; finished as any other (`resume.KeptShards.finish`) once complete;
- `edges-<k>.bin`: the edge pieces of the shards whose number (in this
  build's list of shards to write) is k modulo `_BUCKETS`: each an `_ENTRY`
  (shard number int32, offset int64, length uint32; little-endian), then
  its bytes. Deleted once their blocks are written.
A failed build deletes both; a rerun writes these shards again from the start.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import mmap
import os
import resource
import struct
from collections.abc import Callable, Sequence

import numpy as np

from imagenet2012_local import direct_reads
from imagenet2012_local import image_fixes
from imagenet2012_local import in_order_index
from imagenet2012_local import plan
from imagenet2012_local import resume
from imagenet2012_local import shard_writer
from imagenet2012_local import tar_reader
from imagenet2012_local import tfds_internals
from imagenet2012_local import tfrecords
from imagenet2012_local import errors

_BUCKETS = 64  # Edge files: full ImageNet's ~5 GB of edges, ~85 MB each.
_ENTRY = struct.Struct('<iqI')
_SPARE_FILES = 64  # Descriptors left for everything else.


@dataclasses.dataclass
class _Shard:
  """One shard being written in place."""

  task: plan.ShardTask
  place: int  # In the build's list of tasks.
  name: str
  key: str
  fd: int
  size: int  # Planned bytes.
  fixer: image_fixes.ImageFixer
  count: int = 0  # Records written.


def usable(layout: shard_writer.Layout, tasks: Sequence[plan.ShardTask]) -> bool:
  """Whether `layout` can be written in place for `tasks`: it frames its
  records as TFRecords (`record_size`), their archives were read in order
  (content columns), and every shard can stay open at once."""
  record_size = getattr(layout, 'record_size', None)
  if not tasks or record_size is None or record_size(1, 1, 1, 0, 'x') is None:
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
  """Writes the shards of `tasks` (see the module docstring); kept shards of
  an interrupted build are reused. `on_result` runs for each, in task order.

  Raises:
    image_fixes.UndecodableImageError: an image no decoder reads, unless
      `skip_bad_images`.
    tar_reader.ArchiveError: an archive changed since it was indexed.
  """
  results: dict[int, shard_writer.ShardResult] = {}
  shards: list[_Shard] = []
  try:
    for number, task in enumerate(tasks):
      name, key = writer.kept_key(task)
      reused = kept.reusable(name, key)
      if reused is not None:
        results[number] = shard_writer.ShardResult(**reused.result)
      else:
        shards.append(_open(task, number, name, key, layout, kept, skip_bad_images))
    by_archive = collections.defaultdict(list)
    for number, shard in enumerate(shards):
      by_archive[shard.task.archive].append(number)
    if shards:
      with _Edges(kept.folder, shards) as edges:
        for archive, numbers in by_archive.items():
          _write_archive(archive, [shards[n] for n in numbers], numbers, layout, edges)
        edges.write_blocks()
  except BaseException:
    for shard in shards:  # Half-written: a rerun writes them again.
      kept.folder.joinpath(f'{shard.name}.partial').unlink(missing_ok=True)
    raise
  finally:
    for shard in shards:
      os.close(shard.fd)
  for shard in shards:
    result = shard_writer.ShardResult(
        split=shard.task.split,
        index=shard.task.index,
        num_examples=shard.count,
        num_bytes=shard.size,
        fixed_images=shard.fixer.fixed,
        skipped_images=shard.fixer.skipped,
    )
    kept.finish(shard.name, shard.key, dataclasses.asdict(result))
    results[shard.place] = result
  ordered = [results[number] for number in range(len(tasks))]
  for task, result in zip(tasks, ordered):
    on_result(task, result)
  return ordered


def _open(
    task: plan.ShardTask,
    place: int,
    name: str,
    key: str,
    layout: shard_writer.Layout,
    kept: resume.KeptShards,
    skip_bad_images: bool,
) -> _Shard:
  """The shard of `task`, its file created at its planned size."""
  path = kept.partial_path(name)
  fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
  size = int(_record_sizes(task, layout).sum())
  os.ftruncate(fd, size)
  fixer = image_fixes.ImageFixer(task.archive, skip_bad_images)
  return _Shard(task, place, name, key, fd, size, fixer)


def _record_sizes(task: plan.ShardTask, layout: shard_writer.Layout) -> np.ndarray:
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


def _write_archive(
    archive: str,
    shards: list[_Shard],
    numbers: list[int],
    layout: shard_writer.Layout,
    edges: _Edges,
) -> None:
  """Reads `archive` in order, writing each planned image's record in place."""
  index = shards[0].task.split_index  # Shared by the split's tasks.
  rows, owner, places, sizes, labels = [], [], [], [], []
  for shard, number in zip(shards, numbers):
    task = shard.task
    record_sizes = _record_sizes(task, layout)
    task_rows = np.arange(len(index)) if task.rows is None else task.rows
    rows.append(task_rows)
    owner.append(np.full(len(task_rows), number, dtype=np.int32))
    places.append(np.cumsum(record_sizes) - record_sizes)
    sizes.append(record_sizes)
    labels.append(task.labels)
  rows, owner, places, sizes, labels = map(np.concatenate, (rows, owner, places, sizes, labels))
  order = np.argsort(index.offsets[rows], kind='stable')
  by_number = dict(zip(numbers, shards))
  pieces = direct_reads.pieces(archive)
  with tfds_internals.progress_bar(
      total=os.path.getsize(archive), desc='Writing shards in order', unit='B',
      unit_scale=True,
  ) as bar:
    view = in_order_index.InOrderFile(pieces, lambda piece: bar.update(len(piece)))
    try:
      for i in order:
        row = rows[i]
        shard = by_number[int(owner[i])]
        name = index.file_name(row)
        view.seek(int(index.offsets[row]))
        data = view.read(int(index.sizes[row]))
        fixed = shard.fixer(name, data)
        if fixed is None:
          continue
        record = layout.encode(fixed, int(labels[i]), name)
        framed = b''.join((tfrecords.frame_head(record), record, tfrecords.frame_tail(record)))
        if len(framed) != sizes[i]:
          raise _changed(archive, name)
        edges.place(int(owner[i]), shard.fd, int(places[i]), framed)
        shard.count += 1
    finally:
      pieces.close()


def _changed(archive: str, name: str) -> tar_reader.ArchiveError:
  return tar_reader.ArchiveError(errors.two_lines(
      f'{archive}: image {name} is not what it was when the archive was'
      ' indexed: the file changed',
      'Run the build again (it indexes the archive anew); if it persists,'
      f' set {"IMAGENET2012_LOCAL_READ_ORDER"}=by-offset.',
  ))


def block_size(folder) -> int:
  """The unit a write into `folder`'s files must cover whole not to make the
  kernel read first: the page, or the file system's block if larger."""
  return max(mmap.PAGESIZE, os.statvfs(folder).f_bsize)


class _Edges:
  """Whole blocks written in place, partial ones kept in edge files until
  every record is written (see the module docstring)."""

  def __init__(self, folder, shards: list[_Shard]):
    self._folder = folder
    self._shards = shards
    self._block = block_size(folder)
    self._files: list[io.BufferedRandom | None] = [None] * _BUCKETS

  def __enter__(self) -> _Edges:
    return self

  def __exit__(self, *exc_info) -> None:
    for k, f in enumerate(self._files):
      if f is not None:
        f.close()
        self._path(k).unlink(missing_ok=True)

  def _path(self, k: int):
    return self._folder / f'edges-{k:02d}.bin'

  def place(self, number: int, fd: int, start: int, data: bytes) -> None:
    """Writes `data` at `start` of shard `number`'s file: whole blocks now,
    the partial ones at either end once all are written."""
    block = self._block
    end = start + len(data)
    whole_start = min(end, -(-start // block) * block)
    whole_end = max(whole_start, end // block * block)
    view = memoryview(data)
    if start < whole_start:
      self._keep(number, start, view[: whole_start - start])
    if whole_start < whole_end:
      os.pwrite(fd, view[whole_start - start : whole_end - start], whole_start)
    if whole_end < end:
      self._keep(number, whole_end, view[whole_end - start :])

  def _keep(self, number: int, start: int, piece: memoryview) -> None:
    k = number % _BUCKETS
    if self._files[k] is None:
      self._files[k] = open(self._path(k), 'w+b')
    self._files[k].write(_ENTRY.pack(number, start, len(piece)))
    self._files[k].write(piece)

  def write_blocks(self) -> None:
    """Writes every kept block whole, bucket by bucket."""
    for f in self._files:
      if f is None:
        continue
      f.flush()
      f.seek(0)
      blocks = collections.defaultdict(list)
      data = f.read()
      pos = 0
      while pos < len(data):
        number, start, length = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        blocks[number, start // self._block].append((start, data[pos : pos + length]))
        pos += length
      for (number, block_number), parts in blocks.items():
        self._write_block(self._shards[number], block_number, sorted(parts))

  def _write_block(self, shard: _Shard, block_number: int, parts: list[tuple[int, bytes]]) -> None:
    """Joins the pieces of one block, which must cover it, and writes it."""
    start = block_number * self._block
    end = min(start + self._block, shard.size)
    at = start
    for piece_start, piece in parts:
      if piece_start != at:
        break
      at += len(piece)
    if at != end:
      raise RuntimeError(
          f'{shard.name}: block at byte {start:,} has pieces up to {at:,}, not'
          f' {end:,}'
      )
    os.pwrite(shard.fd, b''.join(piece for _, piece in parts), start)
