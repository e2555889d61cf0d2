"""Folders a command may never replace or delete: those of the input archives.

A build deletes folders (an output replaced with `--overwrite`, kept shards,
staging folders of killed builds). Any of them pointed at the manual dir, or
at a folder around or inside it, would delete the archives: 145 GB to
download again. Every command calls `refuse_to_delete` on what it will
delete before doing any work, so a refusal comes first and nothing is lost;
each deletion calls it again just before (or goes through `delete`, which
does), in case a folder changed meanwhile.

A folder is protected when, symlinks resolved, it is, holds or lies inside
one of the command's input folders (the manual dir; a prepared dataset for
`export-tpu`), or when it holds an ImageNet archive by name at any depth
(`ILSVRC2012_*.tar`, `ILSVRC2012_*.tar.gz`, wherever they came from).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local.sources import storage

# The names image-net.org gives its archives (the split tars, the devkit, the
# bounding boxes), renamed copies such as `ILSVRC2012_img_val (1).tar` too.
_ARCHIVE_PATTERNS = ('ILSVRC2012_*.tar', 'ILSVRC2012_*.tar.gz')


class InputFolderError(errors.Imagenet2012LocalError):
  """A folder to replace or delete is, holds or is inside an input folder.

  The input folders: the manual dir, the dataset `export-tpu` reads, any
  folder holding an ImageNet archive. Nothing was deleted.
  """


def refuse_to_delete(
    folder: epath.PathLike, inputs: Iterable[epath.PathLike]
) -> None:
  """Raises unless deleting `folder` leaves every input in place.

  Args:
    folder: a folder (or file) the command will replace or delete.
    inputs: the folders the command reads (the manual dir...).

  Raises:
    InputFolderError: `folder` is, holds or is inside one of `inputs`, or
      holds a file named like an ImageNet archive.
  """
  target = _resolved(folder)
  for given in inputs:
    protected = _resolved(given)
    if target == protected:
      relation = 'is'
    elif target in protected.parents:
      relation = 'holds'
    elif protected in target.parents:
      relation = 'is inside'
    else:
      continue
    raise InputFolderError(errors.two_lines(
        f'{folder} would be replaced or deleted, but it {relation} the input'
        f' folder {protected}',
        f'Nothing was deleted: write the output outside {protected} (another'
        ' --output_dir or --data_dir).',
    ))
  archive = _archive_inside(target)
  if archive is not None:
    raise InputFolderError(errors.two_lines(
        f'{folder} would be replaced or deleted, but it holds the ImageNet'
        f' archive {archive}',
        'Nothing was deleted: move the archives out of it, or write the'
        ' output elsewhere (another --output_dir or --data_dir).',
    ))


def delete(folder: epath.PathLike, inputs: Iterable[epath.PathLike]) -> None:
  """Deletes `folder` if it exists, once `refuse_to_delete` lets it."""
  refuse_to_delete(folder, inputs)
  epath.Path(folder).rmtree(missing_ok=True)


def _resolved(path: epath.PathLike) -> epath.Path:
  """Local paths absolute with every symlink resolved (`epath`'s `resolve`
  leaves symlinks); gs:// and such as given."""
  if storage.is_local(path):
    return epath.Path(os.path.realpath(os.path.expanduser(path)))
  return epath.Path(path)


def _archive_inside(path: epath.Path) -> str | None:
  """The first file at or below local `path` named like an ImageNet archive.

  Symlinks are not followed: deleting a folder deletes a link, not what it
  points to. Cloud folders are not listed (a request per folder).
  """
  if not storage.is_local(path):
    return None
  if path.is_file():
    return os.fspath(path) if _is_archive_name(path.name) else None
  for parent, _, files in os.walk(path):
    for name in files:
      if _is_archive_name(name):
        return os.path.join(parent, name)
  return None


def _is_archive_name(name: str) -> bool:
  return any(fnmatch.fnmatchcase(name, pattern) for pattern in _ARCHIVE_PATTERNS)
