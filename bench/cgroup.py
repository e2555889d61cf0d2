"""Memory cgroups that cap a process tree's memory, page cache included; the
child groups that `bench.throttle` builds on.

A capped run's processes live in a fresh child of this process's own memory
cgroup (so any limit above it still applies), named
`imagenet2012_bench_<pid>_<n>`: the kernel charges the pages they bring into
the page cache (archives read, outputs written) to it and reclaims them beyond
the limit, as on a machine with that much RAM. cgroup v1 (a hierarchy with the
memory controller, usually /sys/fs/cgroup/memory) is used where mounted, else
cgroup v2 (the unified hierarchy, with memory enabled for children).

Check that it caps: `python -m bench.cgroup FILE GB` reads FILE in a group of
GB and prints the group's peak usage and how much of FILE stayed cached.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import sys
import time
from pathlib import Path

from bench import page_cache

_PREFIX = 'imagenet2012_bench_'
_FILES = {  # version -> (limit, peak usage, events with an oom_kill line)
    1: ('memory.limit_in_bytes', 'memory.max_usage_in_bytes',
        'memory.oom_control'),
    2: ('memory.max', 'memory.peak', 'memory.events'),
}
_HOW_TO_FIX = (
    'Run as root where /sys/fs/cgroup/memory (v1) or a cgroup v2 hierarchy'
    ' with the memory controller is writable, or leave out --cache-limit.'
)
_names = itertools.count()


class CgroupError(Exception):
  """A cgroup the harness needs cannot be made here."""


@dataclasses.dataclass(frozen=True)
class Parent:
  """Where child groups are made: a cgroup of this process (or one given)."""

  version: int
  path: Path


def _mounts() -> list[tuple[str, str, str, set[str]]]:
  """(fstype, mount point, root within the hierarchy, super options)."""
  mounts = []
  for line in Path('/proc/self/mountinfo').read_text().splitlines():
    fields, _, rest = line.partition(' - ')
    _, _, _, root, mount_point, *_ = fields.split()
    fstype, _, options = rest.split()
    mounts.append((fstype, mount_point, root, set(options.split(','))))
  return mounts


def _own_cgroups() -> dict[str, str]:
  """This process's cgroups: controllers ('' for v2) -> path in hierarchy."""
  own = {}
  for line in Path('/proc/self/cgroup').read_text().splitlines():
    _, controllers, path = line.split(':', 2)
    own[controllers] = path
  return own


def own_cgroup(controller_v1: str, controller_v2: str) -> Parent | None:
  """This process's cgroup with the controller: v1 if a v1 hierarchy has
  `controller_v1`, else v2 if its cgroup offers `controller_v2`; None if
  neither. Raises OSError if the cgroup files cannot be read."""
  own = _own_cgroups()
  v1_path = next(
      (p for c, p in own.items() if controller_v1 in c.split(',')), None
  )
  for fstype, mount_point, root, options in _mounts():
    if fstype == 'cgroup' and controller_v1 in options and v1_path:
      return Parent(1, Path(mount_point) / os.path.relpath(v1_path, root))
    if fstype == 'cgroup2' and '' in own and not v1_path:
      parent = Path(mount_point) / os.path.relpath(own[''], root)
      if controller_v2 in (parent / 'cgroup.controllers').read_text().split():
        return Parent(2, parent)
  return None


def _parent() -> Parent:
  """This process's memory cgroup; raises CgroupError if there is none."""
  try:
    parent = own_cgroup('memory', 'memory')
  except OSError as e:
    raise CgroupError(
        f'--cache-limit needs a memory cgroup, but reading cgroups failed: {e}.'
        f'\n{_HOW_TO_FIX}'
    ) from e
  if parent is None:
    raise CgroupError(
        '--cache-limit needs a memory cgroup, but neither cgroup v1 nor v2 has'
        f' the memory controller here.\n{_HOW_TO_FIX}'
    )
  return parent


def enable_for_children(group: Path, controller: str) -> None:
  """Enables a v2 `controller` in the children of `group`, and first in
  those of its ancestors, up to the first that has it (a child can only
  enable what its parent enabled for it)."""
  if controller in (group / 'cgroup.subtree_control').read_text().split():
    return
  if controller not in (group / 'cgroup.controllers').read_text().split():
    enable_for_children(group.parent, controller)
  (group / 'cgroup.subtree_control').write_text(f'+{controller}')


class ChildCgroup:
  """A fresh child of a cgroup, named `imagenet2012_bench_<pid>_<n>`, for
  `with` (subclasses make it on enter); on exit what is left in it is killed
  and it is removed."""

  def __init__(self, parent: Path):
    self.path = parent / f'{_PREFIX}{os.getpid()}_{next(_names)}'

  def __exit__(self, *exc_info) -> None:
    self._remove()

  def wrap(self, argv: list[str]) -> list[str]:
    """`argv` started inside this group: a shell moves itself in, then execs
    it (same process, so the whole tree it starts is in the group)."""
    return ['sh', '-c', 'echo $$ > "$0" && exec "$@"',
            str(self.path / 'cgroup.procs'), *argv]

  def _remove(self) -> None:
    """Removes the group, first killing what is left in it (a killed run's
    orphans): rmdir fails while it has processes."""
    for _ in range(50):
      try:
        self.path.rmdir()
        return
      except FileNotFoundError:
        return
      except OSError:
        self._kill_members()
        time.sleep(0.1)
    print(f'Warning: could not remove cgroup {self.path}', file=sys.stderr)

  def _kill_members(self) -> None:
    try:
      pids = (self.path / 'cgroup.procs').read_text().split()
    except OSError:
      return
    for pid in pids:
      try:
        os.kill(int(pid), signal.SIGKILL)
      except ProcessLookupError:
        pass


class MemoryCgroup(ChildCgroup):
  """A child memory cgroup with a limit, for `with`; removed on exit."""

  def __init__(self, limit_bytes: int):
    self._limit_bytes = limit_bytes
    self._parent = _parent()
    self.version = self._parent.version
    super().__init__(self._parent.path)

  def __enter__(self) -> MemoryCgroup:
    limit_file = _FILES[self.version][0]
    try:
      if self.version == 2:
        enable_for_children(self._parent.path, 'memory')
      self.path.mkdir()
      (self.path / limit_file).write_text(str(self._limit_bytes))
    except OSError as e:
      self._remove()
      raise CgroupError(
          f'cannot make a memory cgroup with a limit at {self.path}: {e}.'
          f'\n{_HOW_TO_FIX}'
      ) from e
    return self

  def peak_bytes(self) -> int | None:
    """The group's peak memory use (page cache included) so far; None where
    the kernel does not report it (v2 before Linux 5.19)."""
    peak = self.path / _FILES[self.version][1]
    return int(peak.read_text()) if peak.exists() else None

  def oom_kills(self) -> int:
    """Processes the kernel killed in this group for lack of memory."""
    events = self.path / _FILES[self.version][2]
    for line in events.read_text().splitlines():
      key, _, value = line.partition(' ')
      if key == 'oom_kill':
        return int(value)
    return 0


def _check(path: Path, limit_gb: float) -> None:
  """Reads `path` cold inside a group of `limit_gb`; prints what it used."""
  page_cache.evict([path])
  with MemoryCgroup(int(limit_gb * 1e9)) as group:
    page_cache.warm([path], group.wrap)
    peak = group.peak_bytes()
    print(
        f'cgroup v{group.version} at {group.path}: limit {limit_gb:.2f} GB,'
        f' peak {"unknown" if peak is None else f"{peak / 1e9:.2f} GB"};'
        f' {page_cache.resident_bytes(path) / 1e9:.2f} GB of'
        f' {path.stat().st_size / 1e9:.2f} GB file cached after cat'
    )


if __name__ == '__main__':
  _check(Path(sys.argv[1]), float(sys.argv[2]))
