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


def size_and_mtime(path: epath.PathLike) -> tuple[int, float]:
  """A file's size and modification time: nanoseconds for local files, so a
  rewrite within the same second still counts as a change."""
  if is_local(path):
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns
  stat = epath.Path(path).stat()
  return stat.length, stat.mtime


def absolute(path: epath.PathLike) -> epath.Path:
  """Local paths made absolute (they key caches); gs:// and such as given."""
  path = epath.Path(path)
  return path.expanduser().resolve() if is_local(path) else path
