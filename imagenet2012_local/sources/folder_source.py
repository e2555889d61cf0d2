"""A split's folder of extracted images, as a `source.Source`.

The folder is listed once (`storage.list_tree`: one `stat` per file, or one
listing request per 1,000 objects in a store); every entry must be an image
of the split, named as in the archive, in the place the layout gives it, so
that the index, the labels and the plan are those of the tar build and the
shards come out byte for byte the same. Each image is then read whole, many
files in flight (`storage.read_files`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Iterator, MutableMapping, Sequence

import numpy as np

from imagenet2012_local import errors
from imagenet2012_local.gate import folder_checks
from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import folder_layouts
from imagenet2012_local.sources import image_reads
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import source
from imagenet2012_local.sources import storage

# Stray files named in an error: enough to see the pattern.
_EXAMPLES = 3


@dataclasses.dataclass(frozen=True)
class FolderImages:
  """Reads images whole from a split's folder (see `source.ImageReader`)."""

  folder: str
  reads_in_flight: int
  listing: str  # SHA-256 of the folder's listing: names, sizes, change times.

  @property
  def name(self) -> str:
    return self.folder

  def read(self, images: archive_index.ArchiveIndex) -> Iterator[bytes]:
    paths = [
        storage.join(self.folder, *filter(None, [images.class_dir(row), images.file_name(row)]))
        for row in range(len(images))
    ]
    read = image_reads.read_files(paths, self.reads_in_flight)
    for path, size, data in zip(paths, images.sizes, read):
      if len(data) != size:
        raise folder_layouts.FolderLayoutError(errors.two_lines(
            f'{path} is {len(data):,} bytes, but {int(size):,} when the folder'
            ' was listed: it changed while the build ran',
            'Let whatever writes to the folder finish, then rerun.',
        ))
      yield data

  def identity(self) -> dict[str, object]:
    return {'folder': self.folder, 'listing': self.listing}

  def how_to_replace(self, file_name: str) -> str:
    return f'Replace {file_name} in {self.folder} with a good copy (from the archive)'


class FolderSource:
  """One split of an extracted copy: its folder, checks and labels."""

  def __init__(
      self,
      split_folder: folder_layouts.SplitFolder,
      layout: str,
      class_names: Sequence[str],
      validation_labels: labels.ValidationLabels | None,
      given_labels: dict[str, str] | None,
      reads_in_flight: int,
  ):
    """The split of `split_folder`.

    Args:
      split_folder: the split's folder and whether it holds class folders.
      layout: the copy's layout, in words.
      class_names: the sorted wnids.
      validation_labels: the file-number labels (validation only).
      given_labels: {file name: wnid} the copy states for validation images
        besides its class folders (Kaggle's CSV), cross-checked; or None.
      reads_in_flight: files read ahead at once.
    """
    self._folder = split_folder
    self._class_names = tuple(class_names)
    self._classes = frozenset(class_names)  # Asked once per file listed.
    self._validation_labels = validation_labels
    self._given_labels = given_labels
    self._reads_in_flight = reads_in_flight
    self.split = split_folder.split
    self.name = split_folder.folder
    self.metadata_key = ('folders', self.split)
    self.check = folder_checks.FolderCheck(split_folder.folder, layout, self.split)
    # Listed at once: the input's size and any stray file are known before
    # the build starts, as an archive's size is.
    self._skipped: dict[str, str] = {}
    listed = storage.list_tree(self._folder.folder)
    self._listing = hashlib.sha256(repr(listed).encode()).hexdigest()
    self._index = self._indexed(listed)
    self.check.counted(self._index)

  def index(
      self, skipped: MutableMapping[str, str], map_fn: source.MapFn | None = None
  ) -> archive_index.ArchiveIndex:
    """Every image of the folder; `skipped` receives the hidden files."""
    del map_fn  # Listed already: nothing to spread over workers.
    skipped.update(self._skipped)
    return self._index

  def _indexed(self, listed: list[storage.Listed]) -> archive_index.ArchiveIndex:
    """The index of the listed files.

    Raises:
      folder_layouts.FolderLayoutError: the folder holds other files.
    """
    naming = archive_facts.BY_SPLIT[self.split].image_names
    rows, stray = [], []
    for relative, size, _ in listed:
      parts = relative.split('/')
      if any(part.startswith('.') for part in parts):
        self._skipped[relative] = 'a hidden file'
        continue
      class_dir = parts[0] if len(parts) == 2 else None
      if (
          len(parts) != (2 if self._folder.by_class else 1)
          or not naming.matches(parts[-1])
          or (class_dir is not None and class_dir not in self._classes)
          or (self.split == 'train' and not parts[-1].startswith(f'{class_dir}_'))
      ):
        stray.append(relative)
        continue
      # A file is read whole: its index entry's offset is 0.
      rows.append((class_dir, (parts[-1], 0, size)))
    if stray:
      raise _stray_files_error(self._folder, stray, naming)
    # The listing is sorted by path, so each class folder's files are a run.
    by_class = [
        (class_dir, [entry for _, entry in run])
        for class_dir, run in itertools.groupby(rows, key=lambda row: row[0])
    ]
    if not self._folder.by_class:
      return archive_index.ArchiveIndex.of_tar(by_class[0][1] if by_class else [])
    return archive_index.ArchiveIndex.concatenate(
        [
            archive_index.ArchiveIndex.of_tar(entries, class_id)
            for class_id, (_, entries) in enumerate(by_class)
        ],
        tuple(class_dir for class_dir, _ in by_class),
    )

  def labels(self, index: archive_index.ArchiveIndex) -> np.ndarray:
    """The class number of each image: by class folder in train, by file
    number in validation (cross-checked with the copy's own labels), -1 in
    test.

    Raises:
      labels.LabelError: the copy's labels disagree with the file numbers.
    """
    found = labels.split_labels(
        self.split, index, self._class_names, self._validation_labels
    )
    if self.split == 'validation':
      self._cross_check(index, found)
    return found

  def _cross_check(self, index: archive_index.ArchiveIndex, found: np.ndarray) -> None:
    """Raises on the first image whose class folder or stated label differs
    from its file number's."""
    for row in np.argsort(index.names, kind='stable'):
      name = index.file_name(row)
      expected = self._class_names[found[row]]
      stated = [
          (f'its class folder {index.class_dir(row)}/', index.class_dir(row)),
          ('the copy\'s CSV', (self._given_labels or {}).get(name.removesuffix('.JPEG'))),
      ]
      for where, wnid in stated:
        if wnid is not None and wnid != expected:
          raise labels.LabelError(errors.two_lines(
              f'{self._folder.folder}: {name} is labelled {wnid} by {where},'
              f' but ImageNet labels validation image'
              f' {labels.validation_number(name)} {expected}',
              f'Sort {self._folder.folder} again from the official labels (or'
              ' use ILSVRC2012_img_val.tar), then rerun.',
          ))

  def write_in_order(self) -> bool:
    return False  # Each file is read whole: there is no order to read in.

  def reader(self) -> FolderImages:
    return FolderImages(self._folder.folder, self._reads_in_flight, self._listing)


def _stray_files_error(
    folder: folder_layouts.SplitFolder, stray: list[str], naming: archive_facts.Naming
) -> folder_layouts.FolderLayoutError:
  shape = f'<wnid>/{naming.shape}' if folder.by_class else naming.shape
  return folder_layouts.FolderLayoutError(errors.two_lines(
      f'{folder.folder} holds {len(stray):,} file{"s" * (len(stray) > 1)} that'
      f' {"are" if len(stray) > 1 else "is"} not {folder.split} images named'
      f' {shape} in their place, e.g. {", ".join(stray[:_EXAMPLES])}',
      f'Move them out of {folder.folder} (every file there is read as an'
      ' image of the split), then rerun.',
  ))


def check_synsets(synsets: str | None, class_names: Sequence[str]) -> None:
  """Fails unless Kaggle's `LOC_synset_mapping.txt` (if there) lists the classes.

  Raises:
    labels.LabelError: it lists other wnids.
  """
  if synsets is None:
    return
  listed = [line.split(' ', 1)[0] for line in storage.read_bytes(synsets).decode().splitlines() if line]
  if listed != list(class_names):
    other = next((w for w in listed if w not in class_names), None) or 'fewer of them'
    raise labels.LabelError(errors.two_lines(
        f'{synsets} lists {len(listed):,} classes ({other} among them), not'
        f' ImageNet\'s {len(class_names):,} in wnid order',
        f'Download {archive_facts.KAGGLE_SYNSETS} from Kaggle again, or remove'
        ' it (the labels come from the file numbers and class folders), then rerun.',
    ))


def kaggle_labels(val_solution: str | None) -> dict[str, str] | None:
  """{image id: wnid} of Kaggle's `LOC_val_solution.csv`; None without it.

  Raises:
    labels.LabelError: a line is not `<image id>,<wnid> <box>...`.
  """
  if val_solution is None:
    return None
  given = {}
  text = storage.read_bytes(val_solution).decode()
  for number, line in enumerate(text.splitlines()[1:], start=2):
    image_id, _, boxes = line.partition(',')
    wnid = boxes.split(' ', 1)[0]
    if not image_id or not wnid.startswith('n'):
      raise labels.LabelError(errors.two_lines(
          f'{val_solution}, line {number}: {line[:80]!r} is not'
          ' "<ImageId>,<wnid> <box> ..."',
          f'Download {archive_facts.KAGGLE_VAL_SOLUTION} from Kaggle again, or'
          ' remove it (the labels come from the file numbers), then rerun.',
      ))
    given[image_id] = wnid
  return given
