"""Path helpers: local or cloud, and the form that keys caches and messages."""

from __future__ import annotations

import os

from etils import epath

# Beside a built dataset's files: JSON, {"seconds": the builder's own time
# (without the tfds CLI's start), "path": "sharded", "beam" or
# "tfds-generator"}. Written by the builder, read by the report and the bench.
BUILD_STATS_FILE = 'build_stats.json'


def is_local(path: epath.PathLike) -> bool:
  """Whether `path` is on a local file system (not gs://, s3://, ...)."""
  return '://' not in os.fspath(path)


def file_identity(path: epath.PathLike) -> dict[str, int | float]:
  """What says a file still holds the bytes a remembered check saw: a JSON-ready
  dict, compared whole (the verified archives, the index cache, kept shards).

  Local files: device and inode (the same file, not another one renamed or
  copied into its place), size, and modification and inode-change times in
  nanoseconds. The change time is what cannot be faked: any write, and any
  `touch -r`, `os.utime`, `cp -p` or rsync that sets the modification time
  back, sets it to now, and no user can set it back (short of setting the
  system clock). Cloud objects (gs://...) are never changed in place: a
  rewrite is a new object, whose modification time the store sets, so size
  and that time say it.
  """
  if is_local(path):
    stat = os.stat(path)
    return {
        'device': stat.st_dev,
        'inode': stat.st_ino,
        'bytes': stat.st_size,
        'mtime_ns': stat.st_mtime_ns,
        'ctime_ns': stat.st_ctime_ns,
    }
  stat = epath.Path(path).stat()
  return {'bytes': stat.length, 'mtime': stat.mtime}


def absolute(path: epath.PathLike) -> epath.Path:
  """Local paths made absolute (they key caches); gs:// and such as given."""
  path = epath.Path(path)
  return path.expanduser().resolve() if is_local(path) else path
