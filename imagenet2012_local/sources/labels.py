"""Label sources: the 1,000 class wnids and the validation labels.

Validation labels come from the `validation_labels.txt` that the installed
tensorflow-datasets ships and, when the devkit is in the manual dir, from its
ground truth (ILSVRC2012 ids mapped to wnids through `meta.mat`). Labels are
looked up by the number in the file name, never by position in a listing, so
a partial archive still gets the right labels.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
from collections.abc import Sequence

from etils import epath
import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local import errors
from imagenet2012_local.gate import verification
from imagenet2012_local.sources import storage

DEVKIT_NAME = archive_facts.DEVKIT
_DEVKIT_DATA = 'ILSVRC2012_devkit_t12/data/'
_CLASS_NAMES_FILE = 'datasets/imagenet2012/labels.txt'
_TFDS_VALIDATION_LABELS_FILE = 'datasets/imagenet2012/validation_labels.txt'


class LabelError(errors.Imagenet2012LocalError, ValueError):
  """Validation labels are missing, malformed, or disagree between sources."""


_DEVKIT_HOW_TO_FIX = (
    f'Replace it with the official {DEVKIT_NAME} from'
    f' {archive_facts.DOWNLOAD_PAGE}, or remove it from the manual dir to use the'
    ' labels tensorflow-datasets ships.'
)


def class_names_file() -> epath.Path:
  """The 1,000 sorted wnids, as shipped by tensorflow-datasets."""
  return tfds.core.tfds_path(_CLASS_NAMES_FILE)


def class_names() -> tuple[str, ...]:
  """The 1,000 sorted wnids: label N is class_names()[N]."""
  return tuple(class_names_file().read_text().split())


def validation_number(file_name: str) -> int:
  """The N of `ILSVRC2012_val_%08d.JPEG`; LabelError for any other name."""
  match = archive_facts.VALIDATION_IMAGES.pattern.fullmatch(file_name)
  if not match:
    raise LabelError(
        f'{file_name!r} in the validation archive is not named like'
        f' {archive_facts.VALIDATION_IMAGES.shape}, so its label cannot be looked'
        ' up.\nUse the official ILSVRC2012_img_val.tar, which names its images'
        ' by their number.'
    )
  return int(match.group(1))


@dataclasses.dataclass(frozen=True)
class ValidationLabels:
  """Wnid of each validation image, by the number in its file name."""

  wnids: Sequence[str]  # wnids[N - 1] labels ILSVRC2012_val_N.
  source: str

  def __getitem__(self, file_name: str) -> str:
    number = validation_number(file_name)
    if not 1 <= number <= len(self.wnids):
      raise LabelError(
          f'{file_name} has no label: {self.source} labels images 1 to'
          f' {len(self.wnids):,}.\nUse the official ILSVRC2012_img_val.tar,'
          ' or remove the images without a label when re-packing it.'
      )
    return self.wnids[number - 1]


@dataclasses.dataclass(frozen=True)
class Devkit:
  """What the builder uses from ILSVRC2012_devkit_t12.tar.gz."""

  validation_wnids: list[str]
  words_by_wnid: dict[str, str]  # Human-readable names of the 1,000 classes.


def read_devkit(data: bytes, origin: str = DEVKIT_NAME) -> Devkit:
  """Parses the devkit's ground truth and `meta.mat` from the .tar.gz bytes."""
  try:
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
      meta = _member_bytes(tar, 'meta.mat', origin)
      truth = _member_bytes(tar, 'ILSVRC2012_validation_ground_truth.txt', origin)
  except (tarfile.TarError, EOFError, OSError) as e:
    raise LabelError(
        f'{origin} is not a readable .tar.gz ({e}).\n' + _DEVKIT_HOW_TO_FIX
    ) from e
  synsets = scipy.io.loadmat(io.BytesIO(meta), squeeze_me=True)['synsets']
  wnid_by_id = {int(s['ILSVRC2012_ID']): str(s['WNID']) for s in synsets}
  # meta.mat lists 1,860 synsets: the 1,000 classes and the WordNet nodes
  # above them. Only the classes name a label.
  classes = set(class_names_file().read_text().split())
  words = {
      str(s['WNID']): str(s['words']) for s in synsets if str(s['WNID']) in classes
  }
  try:
    wnids = [wnid_by_id[int(line)] for line in truth.decode().split()]
  except (KeyError, ValueError) as e:
    raise LabelError(
        f'{origin}: the validation ground truth names id {e}, which meta.mat'
        ' does not define.\n' + _DEVKIT_HOW_TO_FIX
    ) from e
  return Devkit(validation_wnids=wnids, words_by_wnid=words)


def _member_bytes(tar: tarfile.TarFile, basename: str, origin: str) -> bytes:
  member = _DEVKIT_DATA + basename
  try:
    return tar.extractfile(member).read()
  except KeyError as e:
    raise LabelError(
        f'{origin} has no {member}, so it is not the ILSVRC2012 (t12)'
        ' development kit.\n' + _DEVKIT_HOW_TO_FIX
    ) from e


def tfds_validation_labels() -> ValidationLabels:
  """The labels that tensorflow-datasets ships for upstream imagenet2012."""
  path = tfds.core.tfds_path(_TFDS_VALIDATION_LABELS_FILE)
  return ValidationLabels(
      wnids=path.read_text().split(),
      source=f"tensorflow-datasets' {path.name}",
  )


def validation_labels(
    manual_dir: epath.Path, verify_checksums: bool
) -> tuple[ValidationLabels, Devkit | None]:
  """The validation labels, cross-checked with the devkit when it is present.

  Raises:
    LabelError: the devkit and tensorflow-datasets disagree on some image.
    verification.ChecksumError: the devkit is not the official one.
  """
  shipped = tfds_validation_labels()
  devkit_path = storage.join(manual_dir, DEVKIT_NAME)
  if not storage.is_file(devkit_path):
    return shipped, None
  data = storage.read_bytes(devkit_path)
  check = verification.ArchiveCheck(devkit_path, verify_checksums)
  if check.needs_hashing:
    check.update(data)
    check.finish()
  devkit = read_devkit(data, origin=str(devkit_path))
  disagree = [
      n
      for n, (ours, theirs) in enumerate(
          zip(devkit.validation_wnids, shipped.wnids), start=1
      )
      if ours != theirs
  ]
  if disagree:
    n = disagree[0]
    raise LabelError(
        f'The validation labels of {devkit_path} and {shipped.source} disagree'
        f' on {len(disagree):,} images, the first ILSVRC2012_val_{n:08d}.JPEG'
        f' ({devkit.validation_wnids[n - 1]} vs {shipped.wnids[n - 1]}).\n'
        + _DEVKIT_HOW_TO_FIX
    )
  return (
      ValidationLabels(
          wnids=shipped.wnids,
          source=f'{shipped.source}, checked against {DEVKIT_NAME}',
      ),
      devkit,
  )


def split_labels(
    split: str,
    index: archive_index.ArchiveIndex,
    class_names: Sequence[str],
    validation: ValidationLabels | None,
) -> np.ndarray:
  """The class number (into the sorted `class_names`) of each image of `index`,
  in its order: by inner tar in train, by file number in validation; -1 for
  the unlabeled test split.

  Raises:
    LabelError: an image has no label.
  """
  number = {wnid: i for i, wnid in enumerate(class_names)}
  if split == archive_facts.TRAIN.split:
    unknown = [d for d in index.class_dirs if d not in number]
    if unknown:
      raise LabelError(errors.two_lines(
          f'{archive_facts.TRAIN.file_name} holds {unknown[0]}.tar, and'
          f' {unknown[0]} is not one of the 1,000 ILSVRC2012 classes',
          f'Use the official {archive_facts.TRAIN.file_name}, or remove the'
          ' inner tars of other classes when re-packing it.',
      ))
    by_class_dir = np.array([number[d] for d in index.class_dirs], dtype=np.int32)
    return by_class_dir[index.class_ids]
  if split == archive_facts.VALIDATION.split:
    return np.array(
        [number[validation[name.decode()]] for name in index.names],
        dtype=np.int32,
    )
  return np.full(len(index), -1, dtype=np.int32)
