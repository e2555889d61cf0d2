"""Free disk space: checked before a build, and named when the disk fills up."""

from __future__ import annotations

import errno
import os
import shutil

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local import paths

# Free space wanted beyond the archives' size: re-encoded images and TFRecord
# framing make the output a little bigger than the input.
_MARGIN_FRACTION = 0.02
_MARGIN_BYTES = 64 << 20
_GB = 1e9


class DiskSpaceError(errors.Imagenet2012LocalError, OSError):
  """The output's disk has, or had, too little free space for it."""


def check_free_space(data_dir: epath.PathLike, archive_bytes: int) -> None:
  """Fails early when `data_dir` cannot hold the output of `archive_bytes`.

  The output is about as big as the archives it comes from. Only local dirs
  are checked (cloud storage has no free-space figure).

  Raises:
    DiskSpaceError: too little free space.
  """
  if not paths.is_local(data_dir):
    return
  needed = int(archive_bytes * (1 + _MARGIN_FRACTION)) + _MARGIN_BYTES
  free = shutil.disk_usage(data_dir).free
  if free < needed:
    raise DiskSpaceError(errors.two_lines(
        f'Not enough free disk space under {data_dir}: the build needs about'
        f' {_size(needed)} (the archives take {_size(archive_bytes)}), and'
        f' {_size(free)} are free',
        _advice(data_dir),
    ))


def is_full_disk(error: OSError) -> bool:
  """Whether `error` says the disk (or the user's quota) is full."""
  return error.errno in (errno.ENOSPC, errno.EDQUOT)


def full_disk_error(
    path: str, error: OSError, output_dir: str | os.PathLike[str]
) -> DiskSpaceError:
  """The error for a disk that filled up while `path` was written."""
  return DiskSpaceError(errors.two_lines(
      f'The disk filled up while writing {path} ({error.strerror});'
      ' nothing was published',
      _advice(output_dir),
  ))


def _size(num_bytes: int) -> str:
  if num_bytes >= _GB:
    return f'{num_bytes / _GB:,.1f} GB'
  return f'{num_bytes / 1e6:,.1f} MB'


def _advice(output_dir: str | os.PathLike[str]) -> str:
  """What to do; names the flag of each command that writes this output."""
  return (
      f'Free up space under {output_dir} (the output is about as big as the'
      ' archives), or build onto a bigger disk: --data_dir=<folder> for `tfds'
      ' build`, --output_dir=<folder> for `imagenet2012-local build-classic`.'
  )
