"""A build's claim on its output: a folder it can write, and no other build in it.

Unclaimed, two builds into one output would meet only at the end, where the
loser's publish fails on a folder the winner renamed (`FileNotFoundError`),
after both wrote the same kept shards; and an output on a read-only file
system would fail inside a staging folder the user never named. So a build
claims its output folder before it reads any archive (`claimed`):

1. the nearest existing folder on the way to it must take a new file (an
   unnamed temporary one, so nothing is left behind); else the build stops,
   naming the folder the user gave and its flag;
2. it takes an exclusive `fcntl.flock` on `<folder>.lock`, beside the folder,
   without waiting: a second build stops at once, naming the folder and the
   first build's process id, which the lock file holds. The kernel releases
   a flock when its process dies, so the file a killed build leaves blocks
   nothing; the build that holds the lock deletes the file at its end.

Cloud storage (`gs://...`) has no flock and no such check: builds there are
not claimed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from etils import epath

from imagenet2012_local.gate import disk_space
from imagenet2012_local import errors
from imagenet2012_local.sources import storage

LOCK_SUFFIX = '.lock'


class OutputNotWritableError(errors.Imagenet2012LocalError, OSError):
  """The build cannot create files where its output goes."""


class BuildInProgressError(errors.Imagenet2012LocalError):
  """Another build is writing the same output."""


@contextlib.contextmanager
def claimed(folder: epath.PathLike, given: epath.PathLike, flag: str) -> Iterator[None]:
  """Holds `folder`, the output folder of a build, for the block.

  Args:
    folder: the folder the build writes (e.g. the TFDS version folder);
      `<folder>.lock` beside it is its lock.
    given: the folder the user named, which holds `folder` or is it.
    flag: the flag that names `given` (`--data_dir`, `--output_dir`).

  Raises:
    OutputNotWritableError: no file can be created on the way to `folder`.
    disk_space.DiskSpaceError: not even the lock file fits.
    BuildInProgressError: another build holds `folder`.
  """
  if not storage.is_local(folder):
    yield
    return
  folder = Path(folder)
  lock_path = folder.with_name(folder.name + LOCK_SUFFIX)
  with disk_space.full_disk_reported(lock_path, folder.parent):
    _check_writable(folder.parent, given, flag)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(lock_path, folder, flag)
  try:
    yield
  finally:
    # Deleted while still held: a build that opened this file meanwhile
    # finds it gone once it gets the lock, and takes a new one (`_lock`).
    lock_path.unlink(missing_ok=True)
    os.close(lock)


def _check_writable(folder: Path, given: epath.PathLike, flag: str) -> None:
  """Fails unless a file can be created in `folder`, or in its nearest
  existing parent where the build would create it."""
  existing = folder
  while not existing.exists() and existing != existing.parent:
    existing = existing.parent
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    if disk_space.is_full_disk(e):
      raise
    raise OutputNotWritableError(errors.two_lines(
        f'Cannot write the output to {given}: creating a file in {existing}'
        f' failed ({e.strerror})',
        'Make that folder writable (its permissions, or a file system mounted'
        f' read-only), or pass {flag}=<a folder you can write>.',
    )) from e


def _lock(lock_path: Path, folder: Path, flag: str) -> int:
  """The open lock file `lock_path`, locked, holding this process's id."""
  while True:
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(lock, 32, 0).decode(errors='replace').strip()
      os.close(lock)
      raise BuildInProgressError(errors.two_lines(
          f'Another build is writing {folder}'
          + (f' (process {holder})' if holder else ''),
          f'Wait for it to finish, or build into another folder: {flag}=<folder>.',
      )) from None
    if _same_file(lock, lock_path):
      break
    os.close(lock)  # Deleted by the build that held it: lock the new one.
  os.ftruncate(lock, 0)
  os.write(lock, f'{os.getpid()}\n'.encode())
  return lock


def _same_file(descriptor: int, path: Path) -> bool:
  """Whether `path` still names the file open as `descriptor`."""
  try:
    named = os.stat(path)
  except FileNotFoundError:
    return False
  held = os.fstat(descriptor)
  return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
