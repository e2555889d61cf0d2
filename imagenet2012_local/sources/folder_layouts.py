"""Which extracted copy of ImageNet a manual dir holds, if any.

Users who no longer have the tars have one of three trees (`archive_facts`):
the old recipe's (`train/<wnid>/`, `validation/` or `val/` flat, `test/`),
torchvision's (validation sorted into `val/<wnid>/`), or Kaggle's
(`ILSVRC/Data/CLS-LOC/{train,val,test}` with its CSV of validation labels).
This module tells them apart from the top folders alone; the images are
listed and checked by `folder_source`. A manual dir that holds two of them,
or tars beside one, is refused: which of them to build would be a guess.
"""

from __future__ import annotations

import dataclasses

from imagenet2012_local import errors
from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import storage


class FolderLayoutError(errors.Imagenet2012LocalError, ValueError):
  """A manual dir's folders are not one of the layouts a build reads."""


@dataclasses.dataclass(frozen=True)
class SplitFolder:
  """One split's folder of images."""

  split: str
  folder: str  # Path or URL.
  by_class: bool  # Images in one `<wnid>/` folder per class.


@dataclasses.dataclass(frozen=True)
class FolderInput:
  """An extracted copy of ImageNet: its layout and its splits' folders."""

  layout: str  # In words, for the first line and the metadata.
  root: str
  splits: dict[str, SplitFolder]  # In split order.
  # Kaggle's validation labels and class list, where the copy has them.
  val_solution: str | None = None
  synsets: str | None = None


def find_folder_input(manual_dir: str, tars: list[str]) -> FolderInput | None:
  """The extracted copy in `manual_dir`; None if it holds none.

  Args:
    manual_dir: the folder (path or URL) to look in.
    tars: the names of the split archives found there.

  Raises:
    FolderLayoutError: two layouts, or tars and a layout, are there, or a
      split's folder is arranged as no layout has it.
  """
  top = dict(storage.list_dir(manual_dir))
  plain = {
      split: [name for name in names if top.get(name)]
      for split, names in archive_facts.SPLIT_FOLDERS.items()
  }
  kaggle = storage.join(manual_dir, *archive_facts.KAGGLE_IMAGES)
  has_kaggle = top.get(archive_facts.KAGGLE_IMAGES[0]) and storage.is_dir(kaggle)
  found = [f'{name}/' for names in plain.values() for name in names]
  if has_kaggle:
    found.append('/'.join(archive_facts.KAGGLE_IMAGES) + '/')
  if not found:
    return None
  if tars or (has_kaggle and len(found) > 1) or any(len(n) > 1 for n in plain.values()):
    raise FolderLayoutError(errors.two_lines(
        f'{manual_dir} holds {_and(tars + found)}: more than one copy of ImageNet,'
        ' and the build would have to guess which to read',
        'Leave one of them there (the tars, or one extracted tree), move the'
        ' others out, and rerun.',
    ))
  if has_kaggle:
    folders = {
        split: storage.join(kaggle, name)
        for split, name in archive_facts.KAGGLE_SPLIT_FOLDERS.items()
    }
    present = {s: f for s, f in folders.items() if storage.is_dir(f)}
    return FolderInput(
        layout="Kaggle's ILSVRC/Data/CLS-LOC tree",
        root=manual_dir,
        splits=_split_folders(present),
        val_solution=_beside(manual_dir, top, archive_facts.KAGGLE_VAL_SOLUTION),
        synsets=_beside(manual_dir, top, archive_facts.KAGGLE_SYNSETS),
    )
  splits = _split_folders({
      split: storage.join(manual_dir, names[0]) for split, names in plain.items() if names
  })
  sorted_val = 'validation' in splits and splits['validation'].by_class
  return FolderInput(
      layout='class folders (torchvision)' if sorted_val else 'extracted tree',
      root=manual_dir,
      splits=splits,
  )


def _split_folders(folders: dict[str, str]) -> dict[str, SplitFolder]:
  """Each split's folder, with whether it holds class folders; train must,
  test must not."""
  splits = {}
  for split, folder in folders.items():
    entries = storage.list_dir(folder)
    by_class = any(is_dir for name, is_dir in entries if not name.startswith('.'))
    if by_class != (split == 'train') and split != 'validation':
      raise FolderLayoutError(errors.two_lines(
          f'{folder} holds {"class folders" if by_class else "images directly"};'
          f' the {split} images of an extracted copy lie'
          f' {"in one <wnid>/ folder per class" if split == "train" else "directly in it"}',
          f'Arrange {folder} as the archive extracts ({_shape(split)}), then rerun.',
      ))
    splits[split] = SplitFolder(split, folder, by_class)
  return splits


def _shape(split: str) -> str:
  archive = archive_facts.BY_SPLIT[split]
  prefix = '<wnid>/' if split == 'train' else ''
  return f'{prefix}{archive.image_names.shape}'


def _beside(manual_dir: str, top: dict[str, bool], name: str) -> str | None:
  return storage.join(manual_dir, name) if top.get(name) is False else None


def _and(names: list[str]) -> str:
  return ', '.join(names[:-1]) + f' and {names[-1]}' if len(names) > 1 else names[0]
