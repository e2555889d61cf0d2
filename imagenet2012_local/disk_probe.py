"""How to index an archive: a header by offset per image, or one read in order.

By offset costs one random read per image: ~1/IOPS each. In order costs the
archive's size over the disk's sequential rate, but where the checksum gate
hashes the archive that read happens anyway (`in_order_index`). Which is
cheaper depends on the disk: ImageNet's images average ~110 KB, so in order
wins wherever a disk serves fewer random reads a second than it reads 110 KB
blocks in order (a standard cloud disk: 375 against ~545; a spinning disk:
~150 against ~1,360), and wherever the disk, not the CPUs, bounds the build;
by offset wins on local SSDs and NVMe, where the reading is spread over
worker processes. So the disk is measured for a fraction of a second: random
4 KiB reads, 16 in flight, and 1 MiB reads in order, both with `O_DIRECT` so
the page cache cannot answer.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import mmap
import os
import random
import time

from etils import epath

from imagenet2012_local import direct_reads
from imagenet2012_local import paths
from imagenet2012_local import settings

_log = logging.getLogger(__name__)

AVERAGE_IMAGE_BYTES = 110_000  # ImageNet's: 154.6 GB over 1.33 M images.
# Below this an archive is indexed by offset, unmeasured: either way takes
# well under a second (every test archive).
_MEASURED_FROM_BYTES = 256 << 20
_RANDOM_READS = 256  # At most, within `_BUDGET_S` each measurement.
_RANDOM_IN_FLIGHT = 16
_SEQUENTIAL_PIECES = 32  # 1 MiB each.
_BUDGET_S = 0.4
# With the gate on, reading in order also makes the digest finish before the
# shards are written instead of beside them: on a disk that keeps the CPUs
# waiting, free; elsewhere worth it only where reads by offset would cost at
# least half as much as the whole read.
_IN_ORDER_WITH_DIGEST = 0.5
# Below this rate in order, a build waits for the disk, not the CPUs (one core
# encodes and frames ~550 MB/s of ImageNet-sized records): reading in order
# then takes no longer than by offset even where the disk seeks fast, and
# saves a random read per image.
_DISK_BOUND_BYTES_PER_S = 300e6


@dataclasses.dataclass(frozen=True)
class DiskRates:
  """What the disk under an archive gave, measured."""

  random_reads_per_s: float  # 4 KiB reads, 16 in flight.
  sequential_bytes_per_s: float


def index_in_order(path: epath.PathLike, size: int, hashing: bool) -> bool:
  """Whether to index the archive at `path` in one read in order.

  Args:
    path: the archive.
    size: its size in bytes.
    hashing: the checksum gate reads it in order anyway.
  """
  return _in_order(
      path, size, _IN_ORDER_WITH_DIGEST if hashing else 1.0, 'indexing'
  )


def write_in_order(path: epath.PathLike, size: int) -> bool:
  """Whether to read the images of the archive at `path` in order (one
  read of it) rather than each at its offset (a random read each)."""
  return _in_order(path, size, 1.0, 'reading images')


def _in_order(path: epath.PathLike, size: int, threshold: float, what: str) -> bool:
  """Whether reading `path` by offset, an image at a time, would take over
  `threshold` times as long as reading it in order."""
  choice = settings.read_order()
  if choice != 'auto':
    return choice == 'in-order'
  if not paths.is_local(path) or size < _MEASURED_FROM_BYTES:
    return False  # Cloud storage: read by many workers at once.
  rates = measure(path, size)
  if rates is None:
    return False
  by_offset = size / AVERAGE_IMAGE_BYTES / rates.random_reads_per_s
  in_order = size / rates.sequential_bytes_per_s
  disk_bound = rates.sequential_bytes_per_s < _DISK_BOUND_BYTES_PER_S
  choose = disk_bound or by_offset > threshold * in_order
  _log.info(
      '%s: %.0f random reads/s, %.0f MB/s in order: %s %s (by offset'
      ' ~%.0f s, in order ~%.0f s).',
      path, rates.random_reads_per_s, rates.sequential_bytes_per_s / 1e6,
      what, 'in order' if choose else 'by offset', by_offset, in_order,
  )
  return choose


@functools.cache
def measure(path: epath.PathLike, size: int) -> DiskRates | None:
  """The disk's rates under `path`, measured once per process; None where
  direct reads are refused."""
  fd = direct_reads.open_direct(epath.Path(path))
  if fd is None:
    return None
  try:
    return DiskRates(_random_rate(fd, size), _sequential_rate(fd, size))
  finally:
    os.close(fd)


def _random_rate(fd: int, size: int) -> float:
  """4 KiB reads a second at random places, `_RANDOM_IN_FLIGHT` at a time."""
  pages = max(1, size // mmap.PAGESIZE)
  chooser = random.Random(0)
  offsets = [chooser.randrange(pages) * mmap.PAGESIZE for _ in range(_RANDOM_READS)]
  deadline = time.monotonic() + _BUDGET_S

  def read_some(part: list[int]) -> int:
    buffer = mmap.mmap(-1, mmap.PAGESIZE)  # Aligned, as direct reads need.
    done = 0
    for offset in part:
      if time.monotonic() > deadline:
        break
      os.preadv(fd, [buffer], offset)
      done += 1
    return done

  parts = [offsets[i::_RANDOM_IN_FLIGHT] for i in range(_RANDOM_IN_FLIGHT)]
  start = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(_RANDOM_IN_FLIGHT) as pool:
    done = sum(pool.map(read_some, parts))
  return done / max(time.monotonic() - start, 1e-6)


def _sequential_rate(fd: int, size: int) -> float:
  """Bytes a second of 1 MiB reads in order, from the archive's middle."""
  buffer = mmap.mmap(-1, 1 << 20)
  offset = (size // 2) & ~((1 << 20) - 1)
  done = 0
  start = time.monotonic()
  for _ in range(_SEQUENTIAL_PIECES):
    got = os.preadv(fd, [buffer], offset + done)
    done += got
    if not got or time.monotonic() - start > _BUDGET_S:
      break
  return done / max(time.monotonic() - start, 1e-6)
