"""Every use of TensorFlow Datasets' private or internal API, in one place.

The fast path writes shards itself, so it needs TFDS's own shard policy, file
names, writers and progress bars. None of that is public API; each use is a
small function here, and `tests/test_tfds_internals.py` pins what each relies
on, so a TFDS upgrade that changes one fails there, loudly, in one place
(hence the `<4.10` pin in setup.cfg until a newer release is checked).

TFDS is imported by the functions that use it, not by this module: worker
processes (`worker_pool`) import modules that use this one but call none of
it, and TFDS's import would add to each one's memory.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from etils import epath

if TYPE_CHECKING:
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import naming
  from tensorflow_datasets.core import splits as splits_lib
  from tensorflow_datasets.core import writer as writer_lib

_T = TypeVar('_T')


def number_of_shards(total_bytes: int, num_examples: int) -> int:
  """The shard count TFDS gives a split of this size (~1 GB or fewer a shard)."""
  from tensorflow_datasets.core.utils import shard_utils  # pylint: disable=g-import-not-at-top

  return shard_utils.ShardConfig.calculate_number_shards(
      total_size=total_bytes, num_examples=num_examples
  )


def shard_bounds(num_examples: int, num_shards: int) -> list[tuple[int, int]]:
  """[start, end) of each shard's examples, as TFDS deals them."""
  from tensorflow_datasets.core.utils import shard_utils  # pylint: disable=g-import-not-at-top

  ends = list(shard_utils.get_shard_boundaries(num_examples, num_shards))
  return list(zip([0, *ends], ends))


def filename_template(
    builder: tfds.core.DatasetBuilder, split: str
) -> naming.ShardedFileTemplate:
  """How TFDS names the shards of `split` (a picklable value)."""
  return builder._get_filename_template(split)  # pylint: disable=protected-access


def shard_path(
    template: naming.ShardedFileTemplate, index: int, num_shards: int
) -> str:
  """Where TFDS expects shard `index` of a split while the build runs."""
  return os.fspath(template.sharded_filepath(shard_index=index, num_shards=num_shards))


def example_writer(builder: tfds.core.GeneratorBasedBuilder) -> writer_lib.ExampleWriter:
  """The builder's writer of its file format (TFRecord, ArrayRecord, ...)."""
  return builder._example_writer()  # pylint: disable=protected-access


def split_info(
    builder: tfds.core.DatasetBuilder,
    split: str,
    shard_lengths: Sequence[int],
    num_bytes: int,
) -> splits_lib.SplitInfo:
  """The SplitInfo of a split written as TFDS would have written it."""
  from tensorflow_datasets.core import splits as splits_lib  # pylint: disable=g-import-not-at-top

  return splits_lib.SplitInfo(
      name=split,
      shard_lengths=list(shard_lengths),
      num_bytes=num_bytes,
      filename_template=filename_template(builder, split),
  )


def manual_dir_as_given(dl_manager: tfds.download.DownloadManager) -> str:
  """The manual dir the user passed, even where TFDS refuses it as empty."""
  return os.fspath(getattr(dl_manager, '_manual_dir', None) or 'The manual dir')


def patched_manual_dir() -> epath.Path | None:
  """The manual dir every download manager gives where TFDS's test harness
  (`tfds.testing.DatasetBuilderTestCase`) replaced the property with its
  dummy data folder; None where the property is TFDS's own."""
  from tensorflow_datasets.core import download  # pylint: disable=g-import-not-at-top

  value = inspect.getattr_static(download.DownloadManager, 'manual_dir')
  if isinstance(value, (property, functools.cached_property)):
    return None
  return epath.Path(value)


def progress_bar(iterable: Iterable[_T] | None = None, **kwargs):
  """TFDS's progress bar (a tqdm): the one `tfds build` shows or hides."""
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top

  return tqdm_utils.tqdm(iterable, **{'leave': False, **kwargs})


def stale_incomplete_dirs(version_dir: epath.Path) -> list[epath.Path]:
  """The temporary folders that killed builds of `version_dir` left behind
  (TFDS builds into `incomplete.<6 random characters>_<version>` beside it).
  Only real folders: TFDS makes no symlink, and one of that name points at
  something that is not ours to delete."""
  return [
      path
      for path in version_dir.parent.glob(f'incomplete.*_{version_dir.name}')
      if path.is_dir() and not os.path.islink(path)
  ]
