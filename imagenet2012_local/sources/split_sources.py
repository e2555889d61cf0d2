"""What a manual dir holds, checked as far as can be before reading it.

Whatever layout a build writes, it starts here: the split archives present
(`tar_source`: sizes against the checksum tables and tar's block size) or
else an extracted copy (`folder_layouts`, `folder_source`: listed and
checked), the free disk space, and the labels (cross-checked with the devkit
when it is there). Each split's input is a `source.Source`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local.gate import disk_space
from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import folder_layouts
from imagenet2012_local.sources import folder_source
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import near_misses
from imagenet2012_local.sources import source
from imagenet2012_local.sources import storage
from imagenet2012_local.sources import tar_source


class MissingArchivesError(errors.Imagenet2012LocalError, FileNotFoundError):
  """The manual dir holds none of the split archives."""


# The extracted copies a build reads (`folder_layouts`), in words.
_FOLDER_LAYOUTS = (
    'train/<wnid>/ with validation/ or val/, flat or in class folders, and'
    ' test/; or Kaggle\'s ILSVRC/Data/CLS-LOC/'
)
# How a user names the manual dir: the flag of `tfds build` and `build-classic`,
# the argument in Python.
_MANUAL_DIR_OPTION = (
    '--manual_dir (in Python: tfds.download.DownloadConfig(manual_dir=...))'
)


@dataclasses.dataclass(frozen=True)
class Sources:
  """The splits' inputs found, in split order, and the devkit if present."""

  by_split: dict[str, source.Source]
  devkit: labels.Devkit | None


@dataclasses.dataclass(frozen=True)
class Found:
  """What a manual dir holds: the split archives, or an extracted copy."""

  archives: list[archive_facts.Archive]
  folders: folder_layouts.FolderInput | None

  @property
  def splits(self) -> list[str]:
    if self.folders is not None:
      return list(self.folders.splits)
    return [archive.split for archive in self.archives]


def find_sources(
    manual_dir: epath.PathLike,
    verify_checksums: bool,
    output_dir: epath.PathLike,
    class_names: Sequence[str],
    kept_folder: epath.PathLike | None = None,
    reads_in_flight: int | None = None,
    read_order: str = 'auto',
) -> Sources:
  """The inputs present in `manual_dir`, checked before any image is read.

  Prints `building_line` first: the one line that says, at the start of
  every build, which splits it builds from what, and what it did not find.

  Args:
    manual_dir: the folder (path or URL) of the archives or extracted copy.
    verify_checksums: the archives' checksum gate.
    output_dir: where the build writes, for the free-space check.
    class_names: the sorted wnids.
    kept_folder: the shards an interrupted build kept there count as written.
    reads_in_flight: the setting; None: what suits where the input lies.
    read_order: the setting: how an archive is read (`disk_probe`).

  Raises:
    MissingArchivesError: no split archive or extracted copy is there.
    folder_layouts.FolderLayoutError: two copies are there, or a folder
      holds files that are not its split's images.
    verification.ChecksumError: an archive has a size no known copy has.
    tar_reader.ArchiveError: an archive is not a whole number of tar blocks.
    disk_space.DiskSpaceError: `output_dir` has too little free space.
    labels.LabelError: the devkit or the copy's labels disagree with the
      shipped labels.
  """
  manual_dir = os.fspath(manual_dir)
  found = find_inputs(manual_dir)
  print(building_line(manual_dir, found), file=sys.stderr, flush=True)
  class_names = tuple(class_names)
  validation_labels, devkit = None, None
  if archive_facts.VALIDATION.split in found.splits:
    validation_labels, devkit = labels.validation_labels(manual_dir, verify_checksums)
  if found.folders is None:
    by_split = tar_source.tar_sources(
        manual_dir, found.archives, verify_checksums, validation_labels,
        class_names, reads_in_flight, read_order,
    )
  else:
    by_split = _folder_sources(
        found.folders, validation_labels, class_names, reads_in_flight
    )
  disk_space.check_free_space(
      output_dir, sum(s.check.size for s in by_split.values()), kept_folder
  )
  return Sources(by_split=by_split, devkit=devkit)


def _folder_sources(
    folders: folder_layouts.FolderInput,
    validation_labels: labels.ValidationLabels | None,
    class_names: tuple[str, ...],
    reads_in_flight: int | None,
) -> dict[str, source.Source]:
  """A `folder_source.FolderSource` per split of an extracted copy."""
  folder_source.check_synsets(folders.synsets, class_names)
  given = folder_source.kaggle_labels(folders.val_solution)
  return {
      split: folder_source.FolderSource(
          split_folder, folders.layout, class_names,
          validation_labels if split == archive_facts.VALIDATION.split else None,
          given if split == archive_facts.VALIDATION.split else None,
          storage.reads_in_flight(folders.root, reads_in_flight),
      )
      for split, split_folder in folders.splits.items()
  }


def find_inputs(manual_dir: epath.PathLike) -> Found:
  """The split archives in `manual_dir`, in split order, or its extracted copy.

  Raises:
    MissingArchivesError: there are none (`no_archives_error`).
    folder_layouts.FolderLayoutError: two copies are there.
  """
  manual_dir = os.fspath(manual_dir)
  archives = [
      archive
      for archive in archive_facts.ARCHIVES
      if storage.is_file(storage.join(manual_dir, archive.file_name))
  ]
  folders = None
  if storage.is_dir(manual_dir):
    folders = folder_layouts.find_folder_input(
        manual_dir, [archive.file_name for archive in archives]
    )
  if not archives and (folders is None or not folders.splits):
    raise no_archives_error(manual_dir)
  return Found(archives, folders)


def building_line(manual_dir: str, found: Found) -> str:
  """One line: the splits built from what, what was not found (with what
  looks like it), and how to add a split later."""
  if found.folders is not None:
    return _folders_line(manual_dir, found.folders)
  return _archives_line(epath.Path(manual_dir), found.archives)


def _folders_line(manual_dir: str, folders: folder_layouts.FolderInput) -> str:
  built = ', '.join(
      f'{split} from {f.folder.removeprefix(manual_dir).lstrip("/")}/'
      for split, f in folders.splits.items()
  )
  line = f'Building {built} in {manual_dir} ({folders.layout})'
  absent = [s for s in archive_facts.BY_SPLIT if s not in folders.splits]
  if not absent:
    return f'{line}.'
  return (
      f'{line}; no folder of {", ".join(absent)}; to add a split later, put its'
      ' folder there and rerun with --overwrite.'
  )


def _archives_line(
    manual_dir: epath.Path, present: Sequence[archive_facts.Archive]
) -> str:
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
  images in no layout a build reads, other files), and what to do."""
  if storage.is_remote(manual_dir):
    return _nothing_at(os.fspath(manual_dir))
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
        f'{manual_dir} holds extracted images ({extracted}), but neither the'
        f' ImageNet 2012 archives ({names}) nor an extracted copy in a layout'
        f' the build reads ({_FOLDER_LAYOUTS})',
        'Arrange the images as one of those layouts (see docs/inputs.md), or'
        ' put the archives in a folder of their own and pass it as'
        f' {_MANUAL_DIR_OPTION}.',
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


def _nothing_at(url: str) -> MissingArchivesError:
  """`no_archives_error` for a manual dir in object storage."""
  bucket = url.split('://', 1)[0] + '://' + url.split('://', 1)[1].split('/', 1)[0]
  if not storage.exists(bucket):
    return MissingArchivesError(errors.two_lines(
        f'The bucket of {url} does not exist (or these credentials cannot see it)',
        'Check the URL, the endpoint (AWS_ENDPOINT_URL for s3://,'
        ' STORAGE_EMULATOR_HOST for gs://) and the credentials, then rerun.',
    ))
  held = [name for name, _ in storage.list_dir(url)] if storage.is_dir(url) else []
  holds = (
      f'; it holds {", ".join(held[:3])}{" ..." if len(held) > 3 else ""}'
      if held
      else '; nothing is stored under it'
  )
  return MissingArchivesError(errors.two_lines(
      f'No ImageNet 2012 archive or extracted copy at {url}{holds}',
      'Upload the archives (or an extracted copy: see docs/inputs.md) there,'
      f' or pass the URL that holds them as {_MANUAL_DIR_OPTION}.',
  ))
