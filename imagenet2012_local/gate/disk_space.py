"""Free disk space: checked before a build, and named when the disk fills up."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local.sources import storage

# Free space wanted beyond the archives' size: re-encoded images and TFRecord
# framing make the output a little bigger than the input.
_MARGIN_FRACTION = 0.02
_MARGIN_BYTES = 64 << 20
_GB = 1e9


class DiskSpaceError(errors.Imagenet2012LocalError, OSError):
  """The output's disk has, or had, too little free space for it."""


def check_free_space(
    data_dir: epath.PathLike,
    archive_bytes: int,
    kept_folder: epath.PathLike | None = None,
) -> None:
  """Fails early when `data_dir` cannot hold the output of `archive_bytes`.

  The output is about as big as the archives it comes from, less what an
  interrupted build kept in `kept_folder` (`resume`): the rerun reuses those
  shards, or writes over them, and publishing links them, so they are space
  already held. Only local dirs are checked (cloud storage has no free-space
  figure).

  Raises:
    DiskSpaceError: too little free space.
  """
  if not storage.is_local(data_dir):
    return
  kept = _kept_bytes(kept_folder)
  needed = max(int(archive_bytes * (1 + _MARGIN_FRACTION)) - kept, 0) + _MARGIN_BYTES
  free = shutil.disk_usage(data_dir).free
  if free < needed:
    counted = f'; {_size(kept)} of shards kept in {kept_folder} count' if kept else ''
    raise DiskSpaceError(errors.two_lines(
        f'Not enough free disk space under {data_dir}: the build needs about'
        f' {_size(needed)} (the archives take {_size(archive_bytes)}{counted}),'
        f' and {_size(free)} are free',
        _advice(data_dir),
    ))


def _kept_bytes(kept_folder: epath.PathLike | None) -> int:
  """The bytes of the finished files an interrupted build kept in
  `kept_folder` (a half-written `.partial` shard is no output): a stat per
  shard (~1,200 for ImageNet), no read."""
  if kept_folder is None or not os.path.isdir(kept_folder):
    return 0
  with os.scandir(kept_folder) as entries:
    return sum(
        entry.stat().st_size
        for entry in entries
        if entry.is_file(follow_symlinks=False) and not entry.name.endswith('.partial')
    )


def is_full_disk(error: OSError) -> bool:
  """Whether `error` says the disk (or the user's quota) is full."""
  return error.errno in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def full_disk_reported(
    writing: epath.PathLike, output_dir: epath.PathLike
) -> Iterator[None]:
  """Raises a full disk's (or quota's) `OSError` from the block as a
  `DiskSpaceError` naming the file (`writing`, if the error names none) and
  what to free; other errors pass unchanged."""
  try:
    yield
  except OSError as e:
    if not is_full_disk(e):
      raise
    raise DiskSpaceError(errors.two_lines(
        f'The disk filled up while writing {e.filename or writing}'
        f' ({e.strerror}); nothing was published',
        _advice(output_dir),
    )) from e


def _size(num_bytes: int) -> str:
  if num_bytes >= _GB:
    return f'{num_bytes / _GB:,.1f} GB'
  return f'{num_bytes / 1e6:,.1f} MB'


def _advice(output_dir: epath.PathLike) -> str:
  """What to do; names the flag of each command that writes this output."""
  return (
      f'Free up space under {output_dir} (the output is about as big as the'
      ' archives), or build onto a bigger disk: --data_dir=<folder> for `tfds'
      ' build`, --output_dir=<folder> for `imagenet2012-local build-classic`.'
  )
