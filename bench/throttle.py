"""Reads limited as a slower disk limits them: a cgroup with a read throttle.

The disks ImageNet lives on serve far fewer requests a second than this VM's
(~25,000 random 512-byte reads a second here, the host's cache behind it): a
cloud VM's standard disk ~375, a spinning disk ~150. A throttled run's
processes live in a fresh child group, `imagenet2012_bench_<pid>_<n>`, that
caps the reads a second and bytes a second its processes may read from the
archives' disk: on cgroup v1 the blkio controller's
`blkio.throttle.read_iops_device` and `blkio.throttle.read_bps_device`, on v2
`io.max` (there the group is a child of the run's memory group, if any: a v2
process is in one group only). v1 throttles reads, not buffered writes
(their writeback is not charged to the group), so the model is kind to
writes.

Check that it limits: `python -m bench.throttle FILE IOPS` reads 512-byte
pieces of FILE at random for 2 s in a group of IOPS reads a second and prints
the rate it got.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from bench import cgroup
from bench import page_cache
from imagenet2012_local import errors


@dataclasses.dataclass(frozen=True)
class ReadLimit:
  """Reads a second and bytes a second a disk serves; None: not limited."""

  iops: int | None = None
  bytes_per_s: int | None = None

  def describe(self) -> str:
    """E.g. '375 reads/s, 60 MB/s'."""
    parts = []
    if self.iops:
      parts.append(f'{self.iops:,} reads/s')
    if self.bytes_per_s:
      parts.append(f'{self.bytes_per_s / 1e6:g} MB/s')
    return ', '.join(parts) or 'unlimited'


# The disks ImageNet mostly lives on (issue 22): a cloud VM's standard
# persistent disk of 500 GB, a spinning disk, a baseline SSD cloud volume.
DISK_KINDS = {
    'none': ReadLimit(),
    'standard-cloud': ReadLimit(375, 60_000_000),
    'spinning': ReadLimit(150, 150_000_000),
    'ssd-cloud': ReadLimit(3000, 125_000_000),
}
_HOW_TO_FIX = (
    'Run as root where /sys/fs/cgroup/blkio (cgroup v1) or a cgroup v2'
    ' hierarchy with the io controller is writable, or leave out --read-iops,'
    ' --read-mbs and --disk-kind'
)
_V1_FILES = (
    'blkio.throttle.read_iops_device',
    'blkio.throttle.read_bps_device',
)


def block_device(path: Path) -> str:
  """'major:minor' of the disk holding `path`: the whole disk for a
  partition (the kernel refuses a partition's limit with ENODEV)."""
  device = os.stat(path).st_dev
  number = f'{os.major(device)}:{os.minor(device)}'
  sys_dir = Path('/sys/dev/block') / number
  if not sys_dir.exists():
    raise cgroup.CgroupError(errors.two_lines(
        f'{path} is on device {number}, which is not a block device (a'
        ' network, overlay or memory file system), so its reads cannot be'
        ' throttled',
        'Put the archives (--workdir) on a local disk, or leave out'
        ' --read-iops, --read-mbs and --disk-kind',
    ))
  if (sys_dir / 'partition').exists():
    return (sys_dir.resolve().parent / 'dev').read_text().strip()
  return number


def _version(parent: Path) -> int:
  """1 where `parent` is a v1 blkio group, 2 where a v2 group."""
  if (parent / _V1_FILES[0]).exists():
    return 1
  if (parent / 'cgroup.controllers').exists():
    return 2
  raise cgroup.CgroupError(errors.two_lines(
      f'reads cannot be throttled: {parent} is neither a cgroup v1 blkio'
      ' group nor a cgroup v2 group',
      _HOW_TO_FIX,
  ))


def _own_parent() -> Path:
  """This process's blkio (v1) or io (v2) cgroup."""
  try:
    parent = cgroup.own_cgroup('blkio', 'io')
  except OSError as e:
    raise cgroup.CgroupError(errors.two_lines(
        f'reads cannot be throttled: reading cgroups failed: {e}', _HOW_TO_FIX
    )) from e
  if parent is None:
    raise cgroup.CgroupError(errors.two_lines(
        'reads cannot be throttled: neither cgroup v1 has the blkio'
        ' controller nor cgroup v2 the io controller here',
        _HOW_TO_FIX,
    ))
  return parent.path


class ReadThrottle(cgroup.ChildCgroup):
  """A child cgroup whose processes' reads from `device` are limited, for
  `with`; removed on exit."""

  def __init__(self, device: str, limit: ReadLimit, parent: Path | None = None):
    """`device`: 'major:minor' (see `block_device`); `parent`: where to make
    the group (default: this process's blkio or io cgroup)."""
    parent = parent or _own_parent()
    self.version = _version(parent)
    self._device = device
    self._limit = limit
    self._parent = parent
    super().__init__(parent)

  def settings(self) -> dict[str, str]:
    """File name in the group -> what is written to it."""
    if self.version == 1:
      values = (self._limit.iops, self._limit.bytes_per_s)
      return {
          name: f'{self._device} {value}'
          for name, value in zip(_V1_FILES, values)
          if value
      }
    limits = [self._device]
    if self._limit.iops:
      limits.append(f'riops={self._limit.iops}')
    if self._limit.bytes_per_s:
      limits.append(f'rbps={self._limit.bytes_per_s}')
    return {'io.max': ' '.join(limits)}

  def __enter__(self) -> ReadThrottle:
    try:
      if self.version == 2:
        cgroup.enable_for_children(self._parent, 'io')
      self.path.mkdir()
      for name, value in self.settings().items():
        (self.path / name).write_text(value)
    except OSError as e:
      self._remove()
      raise cgroup.CgroupError(errors.two_lines(
          f'cannot throttle reads of device {self._device} in a cgroup at'
          f' {self.path}: {e}',
          _HOW_TO_FIX,
      )) from e
    return self


def random_reads_per_s(path: Path, seconds: float) -> float:
  """Reads 512 bytes at distinct random pages of `path`, evicted first and
  without read-ahead, for `seconds`; returns the reads a second."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    pages = os.fstat(fd).st_size // 4096
    reads = 0
    start = time.perf_counter()
    # Distinct pages: a page read twice would come from the page cache.
    for page in random.sample(range(pages), min(pages, 1_000_000)):
      if time.perf_counter() - start >= seconds:
        break
      os.pread(fd, 512, page * 4096)
      reads += 1
    return reads / (time.perf_counter() - start)
  finally:
    os.close(fd)


def measured_reads_per_s(
    path: Path, seconds: float, throttle: ReadThrottle | None
) -> float:
  """`random_reads_per_s` run in a process in `throttle` (None: in none)."""
  argv = [
      sys.executable, '-c',
      'import sys; from bench import throttle; print(throttle'
      '.random_reads_per_s(sys.argv[1], float(sys.argv[2])))',
      str(path), str(seconds),
  ]
  out = subprocess.run(
      throttle.wrap(argv) if throttle else argv,
      cwd=Path(__file__).resolve().parent.parent,
      stdout=subprocess.PIPE,
      check=True,
  ).stdout
  return float(out)


def _check(path: Path, iops: int) -> None:
  """Prints the random-read rate of `path`, unthrottled and throttled."""
  page_cache.evict([path])
  alone = measured_reads_per_s(path, 2, None)
  with ReadThrottle(block_device(path), ReadLimit(iops)) as group:
    limited = measured_reads_per_s(path, 2, group)
    print(
        f'cgroup v{group.version} at {group.path}: {group.settings()};'
        f' 512-byte random reads of {path}: {alone:,.0f}/s unthrottled,'
        f' {limited:,.0f}/s throttled to {iops:,}/s'
    )


if __name__ == '__main__':
  _check(Path(sys.argv[1]), int(sys.argv[2]))
