"""What a manual dir holds instead of the split archives, in words.

A build finds its archives by their exact names (`archive_facts`). When one
is not there, the folder often holds something close: a browser's renamed or
unfinished download (`ILSVRC2012_img_val (1).tar`, `...tar.part`), or the
images already extracted (`train/<wnid>/*.JPEG`, `<wnid>.tar` per class). This
module names such a find and what to do about it, for the build's first line
and for `split_sources.MissingArchivesError`.
"""

from __future__ import annotations

import itertools
import re

from etils import epath

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import storage

# Suffixes that browsers and download managers give a download in progress.
_UNFINISHED = ('.part', '.crdownload', '.download', '.partial', '.tmp', '.aria2')
# Entries looked at per folder: enough to recognise a tree of extracted
# images (ImageNet's folders hold 732 to 1,300 images) while listing at most
# this many names of a 50,000-image folder.
_LOOK_AT = 100
_CLASS_DIR = re.compile(r'n\d{8}')
# ILSVRC2012_img_train_t3.tar is task 3's archive (dogs), not train renamed.
_OTHER_TASK = re.compile(r'_t\d')


def near_miss(
    manual_dir: epath.Path, archive: archive_facts.Archive
) -> tuple[str, str] | None:
  """What in `manual_dir` looks like `archive` under another name, and what
  to do about it: ("ILSVRC2012_img_val (1).tar looks like it under another name",
  "Rename it to ..."); None if nothing does."""
  stem = archive.file_name.removesuffix('.tar').lower()
  wanted = manual_dir / archive.file_name
  for path in sorted(_entries(manual_dir)):
    name = path.name
    if name == archive.file_name:
      if path.is_dir():
        return (
            f'{name} is a folder, not the archive',
            f'Put the {name} you downloaded at {wanted}, as a file: the build'
            ' reads it without extracting it.',
        )
      continue
    # A download is a file; a folder named like one holds extracted images.
    if path.is_dir() or not name.lower().startswith(stem) or _OTHER_TASK.match(name[len(stem):]):
      continue
    if name.endswith(_UNFINISHED):
      return (
          f'{name} looks like its unfinished download',
          f'Let the download finish, then rename it to {wanted} (the build'
          ' finds each archive by its exact name).',
      )
    return (
        f'{name} looks like it under another name',
        f'Rename it to {wanted} (the build finds each archive by its exact'
        ' name).',
    )
  return None


def extracted_images(manual_dir: epath.Path) -> str | None:
  """An example of images or per-class tars extracted from the archives in
  `manual_dir` or one folder below ("train/n01440764/n01440764_10026.JPEG"),
  or None."""
  for path in sorted(_entries(manual_dir)):
    found = _extracted(path) or (
        path.is_dir() and next(filter(None, map(_extracted, _entries(path))), None)
    )
    if found:
      return str(found.relative_to(manual_dir))
  return None


def _extracted(path: epath.Path) -> epath.Path | None:
  """`path` if it is an extracted image or class tar; the first image in it
  if it is a class folder (`<wnid>/`); else None."""
  name = path.name
  if any(
      naming.matches(name)
      for naming in (
          archive_facts.CLASS_TARS,
          archive_facts.TRAIN_IMAGES,
          archive_facts.VALIDATION_IMAGES,
          archive_facts.TEST_IMAGES,
      )
  ):
    return path
  if _CLASS_DIR.fullmatch(name) and path.is_dir():
    return next(
        (p for p in _entries(path) if archive_facts.TRAIN_IMAGES.matches(p.name)),
        None,
    )
  return None


def _entries(folder: epath.Path) -> list[epath.Path]:
  """Up to `_LOOK_AT` entries of `folder`, in the order the OS lists them;
  none in object storage, where a renamed upload is rare and each folder
  looked into would cost a listing request."""
  if storage.is_remote(folder):
    return []
  try:
    return list(itertools.islice(folder.iterdir(), _LOOK_AT))
  except OSError:  # Not a folder, or not readable: nothing to recognise.
    return []
