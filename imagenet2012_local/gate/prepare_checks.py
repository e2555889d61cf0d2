"""The manual dir looked at before TFDS's `download_and_prepare` acts on it.

TFDS creates the data dir's folders before the builder first sees the
archives, and reuses a prepared dataset as it is ("Reusing dataset") once its
folder exists. So without these checks a run that finds no archive leaves
empty folders behind, and an archive added after a build is ignored without
a word: its split stays missing.
"""

from __future__ import annotations

from collections.abc import Collection

from etils import epath
import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_facts
from imagenet2012_local import errors
from imagenet2012_local.gate import protected_paths
from imagenet2012_local.sources import split_sources
from imagenet2012_local import tfds_internals


class SplitNotBuiltError(errors.Imagenet2012LocalError):
  """The prepared dataset lacks a split whose archive is now in the manual dir."""


def check_manual_dir(
    builder: tfds.core.DatasetBuilder,
    download_config: tfds.download.DownloadConfig,
    download_dir: epath.PathLike | None,
) -> None:
  """Raises before TFDS creates a folder or reuses a dataset, if the build
  would find no archive, or would reuse a dataset that lacks a split whose
  archive is there now.

  Raises:
    split_sources.MissingArchivesError: the dataset is to be built, and the
      manual dir holds no split archive.
    SplitNotBuiltError: the dataset is prepared and would be reused, but the
      manual dir holds an archive of a split it lacks.
    protected_paths.InputFolderError: the dataset is to be rebuilt (TFDS
      deletes its version folder first), and that folder holds the archives.
  """
  mode = download_config.download_mode
  if mode == tfds.download.GenerateMode.UPDATE_DATASET_INFO:
    return  # TFDS rewrites the metadata only; no archive is read.
  manual_dir = _manual_dir(builder, download_config, download_dir)
  if mode.overwrite_dataset and builder.data_path.exists():
    # TFDS deletes the version folder first, before the build's own checks.
    protected_paths.refuse_to_delete(builder.data_path, [manual_dir])
  # What TFDS checks before it says "Reusing dataset".
  if builder.data_path.exists() and not mode.overwrite_dataset:
    _check_no_split_added(builder.data_path, builder.info.splits.keys(), manual_dir)
  else:
    split_sources.find_inputs(manual_dir)


def _manual_dir(
    builder: tfds.core.DatasetBuilder,
    download_config: tfds.download.DownloadConfig,
    download_dir: epath.PathLike | None,
) -> epath.Path:
  """The manual dir TFDS will give the build: as configured, else
  `<download dir>/manual` (as `DatasetBuilder._make_download_manager` does)."""
  if download_config.manual_dir:
    return epath.Path(download_config.manual_dir)
  patched = tfds_internals.patched_manual_dir()
  if patched is not None:
    return patched
  return epath.Path(download_dir or builder.data_dir_root / 'downloads') / 'manual'


def _check_no_split_added(
    data_path: epath.Path, built: Collection[str], manual_dir: epath.Path
) -> None:
  try:
    found = split_sources.find_inputs(manual_dir)
  except errors.Imagenet2012LocalError:
    return  # Nothing to add: the prepared dataset is reused as it is.
  added = [split for split in found.splits if split not in built]
  if added:
    inputs = (
        [f'{found.folders.splits[s].folder}/' for s in added]
        if found.folders
        else [archive_facts.BY_SPLIT[s].file_name for s in added]
    )
    raise SplitNotBuiltError(errors.two_lines(
        f'{data_path} has no {" or ".join(added)} split, but'
        f' {manual_dir} now holds {", ".join(inputs)}',
        'To build it, rerun with --overwrite (in Python: DownloadConfig('
        'download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS)),'
        ' which rebuilds every split; to keep the dataset as it is, move that'
        ' archive out of the manual dir.',
    ))
