"""The index of an archive: where each image lies, as compact columns.

The index is read from tar headers alone (`tar_reader`), so shards can be
written in any order by reading images by offset. Full ImageNet has 1,331,167
images: as one Python object each (a name, a wnid, two ints) the index would
take ~300 bytes per image, ~0.4 GB; as numpy columns it takes ~40 (names as
fixed-width bytes, offsets and sizes as int64, a class number as int16), so a
full build stays under 1 GB of memory.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import itertools
import logging
import os
from collections.abc import Callable, Generator, Iterable, Iterator, MutableMapping, Sequence
from typing import TypeVar

from etils import epath
import numpy as np

from imagenet2012_local.sources import archive_facts
from imagenet2012_local import errors
from imagenet2012_local.sources import tar_reader
from imagenet2012_local import tfds_internals
from imagenet2012_local.sources import storage

# Inner tars whose headers are read at once: each walk is one request at a
# time, so several walks keep a disk busy (see `image_reads`).
_INDEX_THREADS = 16

_log = logging.getLogger(__name__)
_T = TypeVar('_T')
_R = TypeVar('_R')

# (name, offset of its first byte in the archive file, size) of one member.
Entry = tuple[str, int, int]
# The optional columns of what the images' content gave (see ArchiveIndex).
CONTENT_COLUMNS = ('stored_sizes', 'heights', 'widths')


@dataclasses.dataclass(frozen=True, eq=False)
class ArchiveIndex:
  """The images of one archive, one row each, in any order (see `take`)."""

  names: np.ndarray  # Fixed-width bytes: UTF-8 file names, e.g. b'n01440764_10026.JPEG'.
  offsets: np.ndarray  # int64: the image's first byte in the (outer) archive file.
  sizes: np.ndarray  # int64
  class_ids: np.ndarray  # int16: row of `class_dirs`; -1 in a flat archive.
  class_dirs: tuple[str, ...] = ()  # The wnids of train's inner tars.
  # What each image's content gave where the archive was read in order
  # (`in_order_index`), so that record sizes are known before it is read
  # again: the bytes stored once fixed (-1: no decoder reads it), and the
  # height and width of that JPEG (int64, int32, int32). None otherwise.
  stored_sizes: np.ndarray | None = None
  heights: np.ndarray | None = None
  widths: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.names)

  def take(self, rows: np.ndarray | slice) -> ArchiveIndex:
    """The index of the given rows, in that order."""
    columns = ('names', 'offsets', 'sizes', 'class_ids', *CONTENT_COLUMNS)
    return dataclasses.replace(self, **{
        column: getattr(self, column)[rows]
        for column in columns
        if getattr(self, column) is not None
    })

  def file_name(self, row: int) -> str:
    return self.names[row].decode()

  def class_dir(self, row: int) -> str | None:
    """The wnid of the inner tar the image lies in (train); None if flat."""
    class_id = self.class_ids[row]
    return None if class_id < 0 else self.class_dirs[class_id]

  def images(self) -> Iterator[Entry]:
    """(file name, offset, size) of each row, in order."""
    for name, offset, size in zip(self.names, self.offsets, self.sizes):
      yield name.decode(), int(offset), int(size)

  @classmethod
  def of_tar(cls, entries: Sequence[Entry], class_id: int = -1) -> ArchiveIndex:
    """The index of one tar's (name, offset, size) entries; `class_id` is the
    row of `class_dirs` of an inner train tar."""
    return cls(
        names=np.array([name.encode() for name, _, _ in entries], dtype=np.bytes_),
        offsets=np.array([offset for _, offset, _ in entries], dtype=np.int64),
        sizes=np.array([size for _, _, size in entries], dtype=np.int64),
        class_ids=np.full(len(entries), class_id, dtype=np.int16),
    )

  @classmethod
  def concatenate(
      cls, parts: Sequence[ArchiveIndex], class_dirs: tuple[str, ...] = ()
  ) -> ArchiveIndex:
    """One index of `parts`, whose class ids are rows of `class_dirs`."""
    if not parts:
      return dataclasses.replace(cls.of_tar([]), class_dirs=class_dirs)
    return cls(
        names=np.concatenate([p.names for p in parts]),
        offsets=np.concatenate([p.offsets for p in parts]),
        sizes=np.concatenate([p.sizes for p in parts]),
        class_ids=np.concatenate([p.class_ids for p in parts]),
        class_dirs=class_dirs,
    )


# Indexes of inner tars, with the members skipped as not images ({name: why}).
Parts = list[tuple['ArchiveIndex', dict[str, str]]]
MapFn = Callable[..., Iterable[Parts]]
# Inner tars per unit of work for `map_fn`: enough for `_INDEX_THREADS` walks
# at once to stay busy, few enough to spread 1,000 of them over workers.
_TARS_PER_ITEM = 64


def index_archive(
    path: epath.PathLike,
    archive: archive_facts.Archive,
    skipped: MutableMapping[str, str] | None = None,
    map_fn: MapFn | None = None,
) -> ArchiveIndex:
  """Every image of an archive with its byte range, in archive order.

  Args:
    path: the archive; any path `epath` opens (local, gs://, ...).
    archive: which ImageNet archive it is (nesting, image names).
    skipped: receives {member: why} for each member skipped as not an image.
    map_fn: maps `index_inner_tars` over groups of inner tars, results in
      order, e.g. on worker processes or Beam workers; default: here.

  Raises:
    tar_reader.ArchiveError: the archive is damaged or holds a member of an
      unknown name.
  """
  path = epath.Path(path)
  skipped = {} if skipped is None else skipped
  top_naming = archive_facts.CLASS_TARS if archive.nested else archive.image_names
  members, top_skipped = tar_reader.index_tar(
      path, 0, storage.size(path), top_naming
  )
  skipped.update(top_skipped)
  if not archive.nested:
    index = ArchiveIndex.of_tar(members)
  else:
    if map_fn is None:
      results = _index_parts(os.fspath(path), 0, members, archive.image_names)
    else:
      groups = [
          (first, members[first : first + _TARS_PER_ITEM])
          for first in range(0, len(members), _TARS_PER_ITEM)
      ]
      index_some = functools.partial(
          index_inner_tars, os.fspath(path), image_names=archive.image_names
      )
      results = itertools.chain.from_iterable(map_fn(index_some, groups))
    parts = []
    results = tfds_internals.progress_bar(
        results, total=len(members), desc=f'Indexing {archive.split}', unit=' tars'
    )
    for part, inner_skipped in results:
      parts.append(part)
      skipped.update(inner_skipped)
    class_dirs = tuple(name.removesuffix('.tar') for name, _, _ in members)
    index = ArchiveIndex.concatenate(parts, class_dirs)
    parts.clear()  # Their memory is given back by the caller (`engine`).
  finish(path, archive.image_names, len(index), skipped)
  return index


def index_inner_tars(
    path: str,
    first_and_tars: tuple[int, Sequence[Entry]],
    image_names: archive_facts.Naming = archive_facts.TRAIN_IMAGES,
) -> Parts:
  """The index of each of some `<wnid>.tar` members of the train archive,
  and the members each skipped as not images; `first` is the first tar's
  place among all (its class id). A unit of work for `map_fn`."""
  first, inner_tars = first_and_tars
  return list(_index_parts(path, first, inner_tars, image_names))


def _index_parts(
    path: str, first: int, inner_tars: Sequence[Entry], image_names: archive_facts.Naming
) -> Iterator[tuple[ArchiveIndex, dict[str, str]]]:
  """`index_inner_tars`, each as soon as it is read."""
  if storage.is_local(path):
    walks = _walk_locally(epath.Path(path), inner_tars, image_names)
  else:
    walks = map_on_threads(
        functools.partial(index_inner_tar, path, image_names=image_names), inner_tars
    )
  for i, (images, inner_skipped) in enumerate(walks):
    # Columns as soon as each inner tar is read: ~40 bytes an image.
    yield ArchiveIndex.of_tar(images, first + i), inner_skipped


def _walk_locally(
    path: epath.Path, inner_tars: Sequence[Entry], image_names: archive_facts.Naming
) -> Iterator[tuple[list[Entry], dict[str, str]]]:
  """`index_inner_tar` of each inner tar, in order, walking `_INDEX_THREADS`
  of them at once on this thread: each walk's next header is asked of the
  kernel (`posix_fadvise(WILLNEED)` starts the read and returns) a round
  before it is read. So many reads are in flight, as with threads, without
  a GIL hand-off per 512-byte header (1.33 M of them for full ImageNet,
  each parsed in microseconds)."""
  with open(path, 'rb', buffering=0) as lookup:
    fd = lookup.fileno()
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    walking: collections.deque[tuple[int, Generator]] = collections.deque()
    done: dict[int, tuple[list[Entry], dict[str, str]]] = {}

    def step(i: int, walk: Generator) -> None:
      try:
        os.posix_fadvise(fd, walk.send(None), tar_reader.BLOCK_SIZE, os.POSIX_FADV_WILLNEED)
        walking.append((i, walk))
      except StopIteration as end:
        # Not a plain tar (None): tarfile reads it, and reports what it must.
        done[i] = (end.value, {}) if end.value is not None else index_inner_tar(
            os.fspath(path), inner_tars[i], image_names
        )

    started = returned = 0
    while returned < len(inner_tars):
      while len(walking) < _INDEX_THREADS and started < len(inner_tars):
        name, offset, size = inner_tars[started]
        step(started, tar_reader.plain_index_steps(
            path, lookup, offset, size, image_names, name
        ))
        started += 1
      while returned in done:
        yield done.pop(returned)
        returned += 1
      if walking:
        step(*walking.popleft())


def map_on_threads(fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
  """`map(fn, items)` on `_INDEX_THREADS` threads, results in order."""
  with concurrent.futures.ThreadPoolExecutor(_INDEX_THREADS, 'index') as pool:
    yield from pool.map(fn, items)


def index_inner_tar(
    path: str,
    inner: Entry,
    image_names: archive_facts.Naming = archive_facts.TRAIN_IMAGES,
) -> tuple[list[Entry], dict[str, str]]:
  """The images of one `<wnid>.tar` member of the train archive, and the
  members skipped as not images ({name: why})."""
  name, offset, size = inner
  return tar_reader.index_tar(epath.Path(path), offset, size, image_names, name)


def finish(
    path: epath.Path,
    image_names: archive_facts.Naming,
    count: int,
    skipped: MutableMapping[str, str],
) -> None:
  """Logs the skipped members; fails when not a single image was found.

  Raises:
    tar_reader.ArchiveError: no image named like `image_names`.
  """
  if skipped:
    _log.warning(
        '%s: skipped %d members that are not images, e.g. %s (all listed in'
        " the dataset's metadata, skipped_members).",
        path,
        len(skipped),
        ', '.join(list(skipped)[:3]),
    )
  if not count:
    raise tar_reader.ArchiveError(errors.two_lines(
        f'{path} holds no image named like {image_names.shape}, so it is not'
        ' the archive its name says',
        f'Put the official {path.name} from {archive_facts.DOWNLOAD_PAGE} in'
        ' the manual dir.',
    ))
