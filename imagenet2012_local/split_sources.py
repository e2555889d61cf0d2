"""The archives in a manual dir, checked as far as can be before reading them.

Whatever layout a build writes (`tfds_layout`, `classic_layout`), it starts
here: which split archives are present, their sizes against the checksum
tables and tar's block size, the free disk space, and the labels (cross-
checked with the devkit when it is there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping, Sequence

from etils import epath
import numpy as np

from imagenet2012_local import archive_facts
from imagenet2012_local import archive_index
from imagenet2012_local import disk_space
from imagenet2012_local import errors
from imagenet2012_local import in_order_index
from imagenet2012_local import index_cache
from imagenet2012_local import labels
from imagenet2012_local import tar_reader
from imagenet2012_local import verification


class MissingArchivesError(errors.Imagenet2012LocalError, FileNotFoundError):
  """The manual dir holds none of the split archives."""


@dataclasses.dataclass(frozen=True)
class SplitSource:
  """One split's archive, its checksum gate, and how its images get labels."""

  archive: archive_facts.Archive
  check: verification.ArchiveCheck
  validation_labels: labels.ValidationLabels | None
  class_names: tuple[str, ...]  # The sorted wnids: label N is class_names[N].

  @property
  def split(self) -> str:
    return self.archive.split

  @property
  def path(self) -> str:
    return str(self.check.path)

  def index(
      self,
      skipped: MutableMapping[str, str],
      map_fn: archive_index.MapFn | None = None,
  ) -> archive_index.ArchiveIndex:
    """The archive's index, remembered from an earlier build of the same
    file where there was one (`index_cache`).

    Args:
      skipped: receives {member: why} for each member that is not an image.
      map_fn: maps over groups of train's inner tars (`archive_index.index_archive`).
    """
    remembered = index_cache.load(self.check.path)
    if remembered is not None:
      index, were_skipped = remembered
    else:
      were_skipped = {}
      index = in_order_index.index_and_hash(self.check, self.archive, were_skipped)
      if index is None:
        index = archive_index.index_archive(
            self.check.path, self.archive, skipped=were_skipped, map_fn=map_fn
        )
      index_cache.save(self.check.path, index, were_skipped)
    skipped.update(were_skipped)
    return index

  def labels(self, index: archive_index.ArchiveIndex) -> np.ndarray:
    """The class number of each image of `index`; -1 in the test split."""
    return labels.split_labels(
        self.split, index, self.class_names, self.validation_labels
    )


@dataclasses.dataclass(frozen=True)
class Sources:
  """The split archives found, in split order, and the devkit if present."""

  by_split: dict[str, SplitSource]
  devkit: labels.Devkit | None


def find_sources(
    manual_dir: epath.PathLike,
    verify_checksums: bool,
    output_dir: epath.PathLike,
    class_names: Sequence[str],
) -> Sources:
  """The archives present in `manual_dir`, checked before any is read.

  Raises:
    MissingArchivesError: no split archive is there.
    verification.ChecksumError: an archive has a size no known copy has.
    tar_reader.ArchiveError: an archive is not a whole number of tar blocks.
    disk_space.DiskSpaceError: `output_dir` has too little free space.
    labels.LabelError: the devkit disagrees with the shipped labels.
  """
  manual_dir = epath.Path(manual_dir)
  present = [
      archive
      for archive in archive_facts.ARCHIVES
      if (manual_dir / archive.file_name).exists()
  ]
  if not present:
    raise MissingArchivesError(
        missing_archives(f'No ImageNet 2012 archive in {manual_dir}')
    )
  checks = {
      archive.split: verification.ArchiveCheck(
          manual_dir / archive.file_name, verify_checksums
      )
      for archive in present
  }
  for check in checks.values():
    tar_reader.check_tar_size(check.path, check.size)
  disk_space.check_free_space(
      output_dir, sum(check.size for check in checks.values())
  )
  validation_labels, devkit = None, None
  if archive_facts.VALIDATION in present:
    validation_labels, devkit = labels.validation_labels(
        manual_dir, verify_checksums
    )
  return Sources(
      by_split={
          archive.split: SplitSource(
              archive, checks[archive.split], validation_labels, tuple(class_names)
          )
          for archive in present
      },
      devkit=devkit,
  )


def missing_archives(what: str) -> str:
  """The message of a MissingArchivesError: `what` is wrong, then what to do."""
  names = ', '.join(archive.file_name for archive in archive_facts.ARCHIVES)
  return errors.two_lines(
      f'{what}: expected {names} (any of them)',
      f'Download them from {archive_facts.DOWNLOAD_PAGE} (free registration)'
      ' into that folder, or pass --manual_dir=<the folder that holds them>.',
  )
