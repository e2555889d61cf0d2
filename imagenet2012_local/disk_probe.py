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
the page cache cannot answer, the middle of three rounds each.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import mmap
import os
import random
import statistics
import time

from etils import epath

from imagenet2012_local import direct_reads
from imagenet2012_local import paths
from imagenet2012_local import settings

_log = logging.getLogger(__name__)

AVERAGE_IMAGE_BYTES = 110_000  # ImageNet's: 154.6 GB over 1.33 M images.
# An archive below this on a disk not measured yet is read by offset,
# unmeasured: either way takes well under a second (every test archive).
_MEASURED_FROM_BYTES = 256 << 20
_RANDOM_READS = 1024  # At most, within `_BUDGET_S`, each round.
_RANDOM_IN_FLIGHT = 16
_SEQUENTIAL_PIECES = 64  # 1 MiB each, at most, each round.
# Long enough that a disk's (or a cgroup throttle's) burst allowance, which
# lets the first ~100 ms through at full speed, does not count for a rate.
_BUDGET_S = 0.2
# Rounds of each measurement, of which the middle one counts: the first may
# ride a burst allowance, and a disk busy for a moment reads slower.
_ROUNDS = 3
# Below this rate in order, a build waits for the disk, not the CPUs (one core
# encodes and frames ~1 GB/s of ImageNet-sized records, and hashes ~1.5).
_DISK_BOUND_BYTES_PER_S = 300e6


@dataclasses.dataclass(frozen=True)
class DiskRates:
  """What the disk under an archive gave, measured."""

  random_reads_per_s: float  # 4 KiB reads, 16 in flight.
  sequential_bytes_per_s: float


def index_in_order(path: epath.PathLike, size: int, hashing: bool) -> bool:
  """Whether a first build should index the archive at `path` in one read in
  order (its headers, and its digest if `hashing`: `in_order_index`), which
  also lets it write the shards from a second read in order.

  By offset, the build reads a header per image (N / IOPS), then the images
  (N / IOPS, or the archive's size over the disk's rate where that is
  longer), with the digest's read beside them sharing the disk's rate; in
  order, it reads the archive twice. On a disk faster than the CPUs the
  digest's overlap with the writing is worth more than the headers' reads
  (by offset unless they alone take longer than a read in order).
  """
  rates = _rates_or_setting(path, size)
  if isinstance(rates, bool):
    return rates
  headers, whole = _costs(rates, size)
  if _disk_bound(rates):
    by_offset = headers + max(headers, (1 + hashing) * whole)
    choose = 2 * whole < by_offset
  else:
    choose = headers > whole
  _say(path, rates, 'indexing it', choose)
  return choose


def write_in_order(path: epath.PathLike, size: int) -> bool:
  """Whether to read the images of the archive at `path` in order (one read
  of it) rather than each at its offset: where a random read per image
  (N / IOPS) takes longer than the whole archive read in order; otherwise
  both take the archive's size over the disk's rate, or less by offset,
  where the reads are spread over the workers."""
  rates = _rates_or_setting(path, size)
  if isinstance(rates, bool):
    return rates
  headers, whole = _costs(rates, size)
  choose = headers > whole
  _say(path, rates, 'reading its images', choose)
  return choose


def _rates_or_setting(path: epath.PathLike, size: int) -> DiskRates | bool:
  """The disk's rates, or the answer where they are not needed: the setting
  (not auto), cloud storage (read by many workers at once: by offset), a
  disk not measured (by offset)."""
  choice = settings.read_order()
  if choice != 'auto':
    return choice == 'in-order'
  if not paths.is_local(path):
    return False
  return _disk_rates(path, size) or False


def _costs(rates: DiskRates, size: int) -> tuple[float, float]:
  """Seconds of a random read per image, and of the archive read in order."""
  images = size / AVERAGE_IMAGE_BYTES
  return images / rates.random_reads_per_s, size / rates.sequential_bytes_per_s


def _disk_bound(rates: DiskRates) -> bool:
  return rates.sequential_bytes_per_s < _DISK_BOUND_BYTES_PER_S


def _say(path: epath.PathLike, rates: DiskRates, what: str, in_order: bool) -> None:
  _log.info(
      '%s: %.0f random reads/s, %.0f MB/s in order: %s %s.',
      path, rates.random_reads_per_s, rates.sequential_bytes_per_s / 1e6,
      what, 'in order' if in_order else 'by offset',
  )


# The rates of each disk (device number) measured by this process: a build's
# archives on one disk are read the same way, the small ones too.
_MEASURED: dict[int, DiskRates | None] = {}


def _disk_rates(path: epath.PathLike, size: int) -> DiskRates | None:
  """The rates of the disk under `path`, measured on the first archive of
  that disk big enough to tell; None before one was (or where the disk
  refuses direct reads)."""
  device = os.stat(path).st_dev
  if device not in _MEASURED:
    if size < _MEASURED_FROM_BYTES:
      return None
    _MEASURED[device] = measure(path, size)
  return _MEASURED[device]


def measure(path: epath.PathLike, size: int) -> DiskRates | None:
  """The disk's rates under `path`; None where direct reads are refused."""
  fd = direct_reads.open_direct(epath.Path(path))
  if fd is None:
    return None
  try:
    rounds = range(_ROUNDS)
    return DiskRates(
        statistics.median(_random_rate(fd, size, seed) for seed in rounds),
        statistics.median(_sequential_rate(fd, size, place) for place in rounds),
    )
  finally:
    os.close(fd)


def _random_rate(fd: int, size: int, seed: int) -> float:
  """4 KiB reads a second at random places, `_RANDOM_IN_FLIGHT` at a time."""
  pages = max(1, size // mmap.PAGESIZE)
  chooser = random.Random(seed)
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


def _sequential_rate(fd: int, size: int, place: int) -> float:
  """Bytes a second of 1 MiB reads in order, from the `place`-th quarter of
  the archive on."""
  buffer = mmap.mmap(-1, 1 << 20)
  offset = (size * (place + 1) // (_ROUNDS + 1)) & ~((1 << 20) - 1)
  done = 0
  start = time.monotonic()
  for _ in range(_SEQUENTIAL_PIECES):
    got = os.preadv(fd, [buffer], offset + done)
    done += got
    if not got or time.monotonic() - start > _BUDGET_S:
      break
  return done / max(time.monotonic() - start, 1e-6)
