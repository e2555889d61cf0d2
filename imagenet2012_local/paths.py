"""Path helpers: local or cloud, and the form that keys caches and messages."""

from __future__ import annotations


from etils import epath

from imagenet2012_local.sources import storage

# Beside a built dataset's files: JSON, {"seconds": the builder's own time
# (without the tfds CLI's start), "path": "sharded", "beam" or
# "tfds-generator"}. Written by the builder, read by the report and the bench.
BUILD_STATS_FILE = 'build_stats.json'


def absolute(path: epath.PathLike) -> epath.Path:
  """Local paths made absolute (they key caches); gs:// and such as given."""
  path = epath.Path(path)
  return path.expanduser().resolve() if storage.is_local(path) else path
