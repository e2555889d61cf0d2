"""How to read an archive: by offset (a header, then an image, per image) or
in order (twice the first time: its index, then its images).

By offset costs a read per header and one per image; in order, the
archive's size over the disk's rate, twice, but where the checksum gate
hashes the archive the first read happens anyway (`in_order_index`), and it
runs in one process where by offset spreads over the workers. Which is
cheaper depends on the disk: on a standard cloud disk (375 reads/s, 60 MB/s)
or a spinning one (~150 seeks/s) reading by offset takes hours for ImageNet
where reading in order takes under one and a half; on a local SSD by offset
wins, the digest beside the writing. So the disk is measured for about a
second: 4 KiB reads as the index reads headers (ascending, one every ~110 KB,
16 walks at once) and as the writing reads images (at random, 16 in flight),
and 1 MiB reads in order, all with `O_DIRECT` so the page cache cannot
answer, the middle of three rounds each; the costs are then compared
(`index_in_order`, `write_in_order`).
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

from imagenet2012_local.sources import direct_reads
from imagenet2012_local.sources import storage

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
# What one core does with an archive read in order: the index's pass
# (parsing headers, deciding fixes, hashing) and the writing's (fixing,
# encoding, framing, writing in place), in bytes of ImageNet-sized images a
# second (docs/performance.md). The writing runs in the build's process only,
# where writing by offset spreads over the worker processes.
_INDEX_BYTES_PER_S = 1.2e9
_WRITE_BYTES_PER_S = 0.5e9


@dataclasses.dataclass(frozen=True)
class DiskRates:
  """What the disk under an archive gave, measured."""

  # 4 KiB reads, 16 walks at once, each reading ascending one every
  # AVERAGE_IMAGE_BYTES, as the index by offset reads headers.
  header_reads_per_s: float
  random_reads_per_s: float  # 4 KiB reads at random places, 16 in flight.
  sequential_bytes_per_s: float


def index_in_order(
    path: epath.PathLike, size: int, hashing: bool, read_order: str = 'auto'
) -> bool:
  """Whether a first build should index the archive at `path` in one read in
  order (its headers, and its digest if `hashing`: `in_order_index`), which
  also lets it write the shards from a second read in order.

  By offset, the build reads a header per image, then the images (see
  `_by_offset`), the digest's read beside them sharing the disk's rate; in
  order, it reads the archive once for the index, then writes whichever
  way is cheaper. `read_order` other than 'auto' (the setting) decides instead.
  """
  rates = _rates_or_setting(path, size, read_order)
  if isinstance(rates, bool):
    return rates
  headers = size / AVERAGE_IMAGE_BYTES / rates.header_reads_per_s
  digest = size / rates.sequential_bytes_per_s if hashing else 0.0
  by_offset = headers + max(_by_offset(rates, size), digest + _whole(rates, size))
  in_order = size / min(rates.sequential_bytes_per_s, _INDEX_BYTES_PER_S) + min(
      _in_order(rates, size), _by_offset(rates, size)
  )
  _say(path, rates, 'indexing it', in_order < by_offset)
  return in_order < by_offset


def write_in_order(path: epath.PathLike, size: int, read_order: str = 'auto') -> bool:
  """Whether to read the images of the archive at `path` in order (one read
  of it, in this process) rather than each at its offset; `read_order` other
  than 'auto' (the setting) decides instead."""
  rates = _rates_or_setting(path, size, read_order)
  if isinstance(rates, bool):
    return rates
  choose = _in_order(rates, size) < _by_offset(rates, size)
  _say(path, rates, 'reading its images', choose)
  return choose


def _by_offset(rates: DiskRates, size: int) -> float:
  """Seconds to read the images at their offsets: a random read each, or the
  archive's bytes at the disk's rate where that takes longer."""
  images = size / AVERAGE_IMAGE_BYTES
  return max(images / rates.random_reads_per_s, _whole(rates, size))


def _in_order(rates: DiskRates, size: int) -> float:
  """Seconds to write from the images read in order, in one process."""
  return size / min(rates.sequential_bytes_per_s, _WRITE_BYTES_PER_S)


def _whole(rates: DiskRates, size: int) -> float:
  return size / rates.sequential_bytes_per_s


def _rates_or_setting(
    path: epath.PathLike, size: int, choice: str
) -> DiskRates | bool:
  """The disk's rates, or the answer where they are not needed: the setting
  (not auto), cloud storage (read by many workers at once: by offset), a
  disk not measured (by offset)."""
  if choice != 'auto':
    return choice == 'in-order'
  if not storage.is_local(path):
    return False
  return _disk_rates(path, size) or False


def _say(path: epath.PathLike, rates: DiskRates, what: str, in_order: bool) -> None:
  _log.info(
      '%s: %.0f header reads/s, %.0f random reads/s, %.0f MB/s in order: %s %s.',
      path, rates.header_reads_per_s, rates.random_reads_per_s,
      rates.sequential_bytes_per_s / 1e6, what, 'in order' if in_order else 'by offset',
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
        statistics.median(_reads_per_s(fd, _walks(size)) for _ in rounds),
        statistics.median(_reads_per_s(fd, _scattered(size)) for _ in rounds),
        statistics.median(_sequential_rate(fd, size, place) for place in rounds),
    )
  finally:
    os.close(fd)


def _walks(size: int) -> list[list[int]]:
  """`_RANDOM_IN_FLIGHT` walks from random places, each a page every
  AVERAGE_IMAGE_BYTES onwards: the index's header reads by offset."""
  chooser = random.Random()  # Fresh places: a disk's cache may hold old ones.
  step = AVERAGE_IMAGE_BYTES // mmap.PAGESIZE * mmap.PAGESIZE
  reads = _RANDOM_READS // _RANDOM_IN_FLIGHT
  starts = [chooser.randrange(max(1, size - reads * step)) for _ in range(_RANDOM_IN_FLIGHT)]
  return [
      [start // mmap.PAGESIZE * mmap.PAGESIZE + k * step for k in range(reads)]
      for start in starts
  ]


def _scattered(size: int) -> list[list[int]]:
  """Pages at random places, in `_RANDOM_IN_FLIGHT` lists: the image reads."""
  chooser = random.Random()
  pages = max(1, size // mmap.PAGESIZE)
  offsets = [chooser.randrange(pages) * mmap.PAGESIZE for _ in range(_RANDOM_READS)]
  return [offsets[i::_RANDOM_IN_FLIGHT] for i in range(_RANDOM_IN_FLIGHT)]


def _reads_per_s(fd: int, parts: list[list[int]]) -> float:
  """4 KiB reads a second of each list of `parts` read on a thread of its
  own, all at once, for up to `_BUDGET_S`."""
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

  start = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(len(parts)) as pool:
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
