"""Reading images with many requests in flight, in order: by offset from an
archive, or whole files from a folder.

A build reads every image at a random offset of a 6-140 GB archive that does
not fit in the page cache. Read one at a time, the disk idles between
requests (a 110 KB read costs a seek or a round trip of the device's queue);
so up to the reader's `reads_in_flight` images ahead are requested before
they are needed, at most `_MAX_BYTES_IN_FLIGHT` bytes of them, and they come
back in the order asked for: the output never depends on which read finishes
first.

The kernel is asked to read the next images into the page cache
(`posix_fadvise(WILLNEED)` starts the reads and returns), and each image is
then read with one `os.pread`, on this thread: a reading thread would need
the GIL back after every read, and wait for it while the encoder holds it.
A folder's files are opened ahead and asked for the same way. Archives and
folders in object storage are read by `storage`.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from imagenet2012_local import errors
from imagenet2012_local.sources import storage
from imagenet2012_local.sources import tar_reader

# Bounds memory when images are large; ImageNet's average 110 KB times 64
# reads in flight is ~7 MB.
_MAX_BYTES_IN_FLIGHT = 64 << 20

Image = tuple[str, int, int]  # File name, offset in the archive, size.
_T = TypeVar('_T')


def read_images(
    archive: str, images: Iterable[Image], in_flight: int
) -> Iterator[bytes]:
  """The bytes of each (file name, offset, size) of `archive`, in order,
  `in_flight` reads ahead.

  Raises:
    tar_reader.ArchiveError: an image is cut off by the end of the file.
  """
  if storage.is_remote(archive):
    images = list(images)
    read = zip(images, storage.read_ranges(
        archive, ((offset, size) for _, offset, size in images), in_flight
    ))
  else:
    read = _read_local(archive, images, in_flight)
  for (name, offset, size), data in read:
    if len(data) != size:
      raise _cut_off(archive, name, offset, size, len(data))
    yield data


def read_files(paths: Sequence[str], in_flight: int) -> Iterator[bytes]:
  """The whole bytes of each file (local, or all in one store), in order,
  `in_flight` reads ahead."""
  if paths and storage.is_remote(paths[0]):
    return storage.read_files(paths, in_flight)
  return _read_local_files(paths, in_flight)


def _read_local_files(paths: Sequence[str], in_flight: int) -> Iterator[bytes]:
  """Local files read whole, the next `in_flight` started ahead: each is
  opened and its pages asked for (`WILLNEED`), then read when its turn comes."""
  window: list[int] = []
  paths = iter(paths)
  try:
    while True:
      while len(window) < in_flight:
        path = next(paths, None)
        if path is None:
          break
        fd = os.open(path, os.O_RDONLY)
        window.append(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
      if not window:
        return
      fd = window.pop(0)
      try:
        yield _read_whole(fd)
      finally:
        os.close(fd)
  finally:
    for fd in window:
      os.close(fd)


def _read_whole(fd: int) -> bytes:
  chunks = []
  while True:
    chunk = os.read(fd, 1 << 20)
    if not chunk:
      return b''.join(chunks)
    chunks.append(chunk)


def _read_local(
    archive: str, images: Iterable[Image], in_flight: int
) -> Iterator[tuple[Image, bytes]]:
  fd = os.open(archive, os.O_RDONLY)
  try:
    # Each image is read once, at a random offset: read-ahead past it would
    # only take disk time from the next reads.
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    for image, started in _window(images, in_flight, lambda image: [image]):
      for _, offset, size in started:
        os.posix_fadvise(fd, offset, size, os.POSIX_FADV_WILLNEED)
      yield image, _pread(fd, image[1], image[2])
  finally:
    os.close(fd)


def _window(
    items: Iterable[_T], in_flight: int, images_of: Callable[[_T], list[Image]]
) -> Iterator[tuple[_T, list[_T]]]:
  """(next item, items to start now) pairs, keeping up to `in_flight` items
  and `_MAX_BYTES_IN_FLIGHT` bytes started ahead of the one returned."""
  window: collections.deque[tuple[_T, int]] = collections.deque()
  window_bytes = 0
  items = iter(items)
  while True:
    started = []
    while len(window) < in_flight and window_bytes < _MAX_BYTES_IN_FLIGHT:
      item = next(items, None)
      if item is None:
        break
      size = sum(image[2] for image in images_of(item))
      started.append(item)
      window.append((item, size))
      window_bytes += size
    if not window:
      return
    item, size = window.popleft()
    window_bytes -= size
    yield item, started


def _pread(fd: int, offset: int, size: int) -> bytes:
  """Up to `size` bytes at `offset`; fewer only where the file ends."""
  data = os.pread(fd, size, offset)
  while 0 < len(data) < size:  # A short read before the end: go on.
    more = os.pread(fd, size - len(data), offset + len(data))
    if not more:
      break
    data += more
  return data


def _cut_off(
    archive: str, name: str, offset: int, size: int, got: int
) -> tar_reader.ArchiveError:
  return tar_reader.ArchiveError(errors.two_lines(
      f'{archive}: image {name} (bytes {offset:,} to {offset + size:,}) is cut'
      f' off: the file ends at byte {offset + got:,}',
      tar_reader.download_again(storage.name_of(archive)),
  ))
