"""The archives in a manual dir, checked as far as can be before reading them.

Whatever layout a build writes (`tfds_layout`, `classic_layout`), it starts
here: which split archives are present, their sizes against the checksum
tables and tar's block size, the free disk space, and the labels (cross-
checked with the devkit when it is there).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import MutableMapping, Sequence

from etils import epath
import numpy as np

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.gate import disk_space
from imagenet2012_local import errors
from imagenet2012_local.sources import in_order_index
from imagenet2012_local.sources import index_cache
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import near_misses
from imagenet2012_local.sources import tar_reader
from imagenet2012_local.gate import verification


class MissingArchivesError(errors.Imagenet2012LocalError, FileNotFoundError):
  """The manual dir holds none of the split archives."""


# How a user names the manual dir: the flag of `tfds build` and `build-classic`,
# the argument in Python.
_MANUAL_DIR_OPTION = (
    '--manual_dir (in Python: tfds.download.DownloadConfig(manual_dir=...))'
)


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
    kept_folder: epath.PathLike | None = None,
) -> Sources:
  """The archives present in `manual_dir`, checked before any is read.

  Prints `building_line` first: the one line that says, at the start of
  every build, which splits it builds and which archives it did not find.

  Raises:
    MissingArchivesError: no split archive is there (`no_archives_error`).
    verification.ChecksumError: an archive has a size no known copy has.
    tar_reader.ArchiveError: an archive is not a whole number of tar blocks.
    disk_space.DiskSpaceError: `output_dir` has too little free space (the
      shards an interrupted build kept in `kept_folder` count as written).
    labels.LabelError: the devkit disagrees with the shipped labels.
  """
  manual_dir = epath.Path(manual_dir)
  present = present_archives(manual_dir)
  print(building_line(manual_dir, present), file=sys.stderr, flush=True)
  checks = {
      archive.split: verification.ArchiveCheck(
          manual_dir / archive.file_name, verify_checksums
      )
      for archive in present
  }
  for check in checks.values():
    tar_reader.check_tar_size(check.path, check.size)
  disk_space.check_free_space(
      output_dir, sum(check.size for check in checks.values()), kept_folder
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


def present_archives(manual_dir: epath.Path) -> list[archive_facts.Archive]:
  """The split archives in `manual_dir`, in split order.

  Raises:
    MissingArchivesError: there are none (`no_archives_error`).
  """
  present = [
      archive
      for archive in archive_facts.ARCHIVES
      if (manual_dir / archive.file_name).is_file()
  ]
  if not present:
    raise no_archives_error(manual_dir)
  return present


def building_line(
    manual_dir: epath.Path, present: Sequence[archive_facts.Archive]
) -> str:
  """One line: the splits built from which archives, the archives not found
  (with what looks like them), and how to add a split later."""
  built = ', '.join(f'{a.split} from {a.file_name}' for a in present)
  absent = [
      _absent(manual_dir, archive)
      for archive in archive_facts.ARCHIVES
      if archive not in present
  ]
  if not absent:
    return f'Building {built} in {manual_dir}.'
  return (
      f'Building {built}; not found in {manual_dir}: {", ".join(absent)}; to'
      ' add a split later, put its archive there and rerun with --overwrite.'
  )


def _absent(manual_dir: epath.Path, archive: archive_facts.Archive) -> str:
  """A missing archive, its split, and what in `manual_dir` looks like it."""
  notes = [archive.split]
  if archive is archive_facts.TEST:
    notes.append('optional')
  near = near_misses.near_miss(manual_dir, archive)
  if near:
    notes.append(near[0])
  return f'{archive.file_name} ({", ".join(notes)})'


def no_archives_error(manual_dir: epath.PathLike) -> MissingArchivesError:
  """The error for a manual dir without any split archive: what is there
  instead (nothing, a file, a renamed or unfinished download, extracted
  images, other files), and what to do."""
  manual_dir = epath.Path(manual_dir)
  names = ', '.join(archive.file_name for archive in archive_facts.ARCHIVES)
  download = (
      f'Download them from {archive_facts.DOWNLOAD_PAGE} (free registration)'
      ' into that folder, or pass the folder that holds them as'
      f' {_MANUAL_DIR_OPTION}.'
  )
  if not manual_dir.exists():
    return MissingArchivesError(errors.two_lines(
        f'The manual dir {manual_dir} does not exist',
        f'Pass the folder that holds {names} (any of them) as'
        f' {_MANUAL_DIR_OPTION}.',
    ))
  if not manual_dir.is_dir():
    return MissingArchivesError(errors.two_lines(
        f'The manual dir {manual_dir} is a file, not a folder',
        f'Pass the folder that holds it, {manual_dir.parent}, as'
        f' {_MANUAL_DIR_OPTION}.',
    ))
  for archive in archive_facts.ARCHIVES:
    near = near_misses.near_miss(manual_dir, archive)
    if near:
      return MissingArchivesError(errors.two_lines(
          f'No ImageNet 2012 archive in {manual_dir}, but {near[0]}'
          f' ({archive.file_name})',
          near[1],
      ))
  extracted = near_misses.extracted_images(manual_dir)
  if extracted:
    return MissingArchivesError(errors.two_lines(
        f'{manual_dir} holds extracted images ({extracted}), not the ImageNet'
        f' 2012 archives: expected {names} (any of them)',
        'The build reads the archives as downloaded, without extracting them:'
        ' put them in a folder (the extracted copy is not needed) and pass it'
        f' as {_MANUAL_DIR_OPTION}.',
    ))
  held = sorted(path.name for path in manual_dir.iterdir())
  holds = (
      f'; it holds {", ".join(held[:3])}{" ..." if len(held) > 3 else ""}'
      if held
      else '; it is empty'
  )
  return MissingArchivesError(errors.two_lines(
      f'No ImageNet 2012 archive in {manual_dir}: expected {names} (any of'
      f' them){holds}',
      download,
  ))
