"""Reading images by offset with many requests in flight, in order.

A build reads every image at a random offset of a 6-140 GB archive that does
not fit in the page cache. Read one at a time, the disk idles between
requests (405 MB/s for 110 KB reads on a test machine's disk, against 854
with 16 in flight); on cloud storage, at 1-50 ms a request, one at a time
would hold a worker to ~110 MB/s at best. So up to `settings.reads_in_flight`
images ahead are requested before they are needed, at most
`_MAX_BYTES_IN_FLIGHT` bytes of them, and they come back in the order asked
for: the output never depends on which read finishes first.

- Local files: the kernel is asked to read the next images into the page
  cache (`posix_fadvise(WILLNEED)` starts the reads and returns), and each
  image is then read with one `os.pread`, on this thread. Threads would
  cost more than they give here: a reading thread needs the GIL back after
  every read, and waits for it while the encoder holds it (full ImageNet's
  1.33 M images, warm: 42 s of writing with 16 threads, 33 s without).
- Cloud files (`gs://`, ...): threads, each with its own open file, reading
  runs of images of at least `_CHUNK_BYTES` (one hand-off per run).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local import paths
from imagenet2012_local import settings
from imagenet2012_local.sources import tar_reader

# Bounds memory when images are large; ImageNet's average 110 KB times 64
# reads in flight is ~7 MB.
_MAX_BYTES_IN_FLIGHT = 64 << 20
# Images read by one request to a cloud reading thread: one ImageNet-sized
# image, or a run of small ones.
_CHUNK_BYTES = 64 << 10

Image = tuple[str, int, int]  # File name, offset in the archive, size.
_T = TypeVar('_T')


def read_images(archive: epath.PathLike, images: Iterable[Image]) -> Iterator[bytes]:
  """The bytes of each (file name, offset, size) of `archive`, in order.

  Raises:
    tar_reader.ArchiveError: an image is cut off by the end of the file.
  """
  archive = epath.Path(archive)
  in_flight = settings.reads_in_flight(archive)
  read = _read_local if paths.is_local(archive) else _read_cloud
  for (name, offset, size), data in read(archive, images, in_flight):
    if len(data) != size:
      raise _cut_off(archive, name, offset, size, len(data))
    yield data


def _read_local(
    archive: epath.Path, images: Iterable[Image], in_flight: int
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


def _read_cloud(
    archive: epath.Path, images: Iterable[Image], in_flight: int
) -> Iterator[tuple[Image, bytes]]:
  handles = threading.local()  # One open file per thread.
  opened = []

  def read_run(run: list[Image]) -> list[bytes]:
    f = getattr(handles, 'file', None)
    if f is None:
      f = handles.file = archive.open('rb')
      opened.append(f)
    out = []
    for _, offset, size in run:
      f.seek(offset)
      out.append(f.read(size))
    return out

  pool = _pool(in_flight)
  futures = []
  try:
    for run, started in _window(_runs(images), in_flight, lambda run: run):
      futures += [pool.submit(read_run, queued) for queued in started]
      yield from zip(run, futures.pop(0).result())
  finally:
    for future in futures:
      future.cancel()
    concurrent.futures.wait(futures)
    for f in opened:
      f.close()


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


def _runs(images: Iterable[Image]) -> Iterator[list[Image]]:
  """`images` in runs of at least `_CHUNK_BYTES` (or one image)."""
  run, run_bytes = [], 0
  for image in images:
    run.append(image)
    run_bytes += image[2]
    if run_bytes >= _CHUNK_BYTES:
      yield run
      run, run_bytes = [], 0
  if run:
    yield run


def _pread(fd: int, offset: int, size: int) -> bytes:
  """Up to `size` bytes at `offset`; fewer only where the file ends."""
  data = os.pread(fd, size, offset)
  while 0 < len(data) < size:  # A short read before the end: go on.
    more = os.pread(fd, size - len(data), offset + len(data))
    if not more:
      break
    data += more
  return data


@functools.cache
def _pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
  """The process's cloud reading threads: made once, not once per shard."""
  return concurrent.futures.ThreadPoolExecutor(threads, 'image-reads')


def _cut_off(
    archive: epath.Path, name: str, offset: int, size: int, got: int
) -> tar_reader.ArchiveError:
  return tar_reader.ArchiveError(errors.two_lines(
      f'{archive}: image {name} (bytes {offset:,} to {offset + size:,}) is cut'
      f' off: the file ends at byte {offset + got:,}',
      tar_reader.download_again(archive.name),
  ))
