"""The ImageNet 2012 archives: one table of their facts, read by everything else.

Which file holds which split, how its members are named and whether it nests
a tar per class: the builder, the index, the labels, the messages, the tests,
the benchmark and the dummy-data script all read them here. Sizes and digests
of the known copies live in the checksum tables (`checksums/*.tsv`, read by
`checksum_tables`).
"""

from __future__ import annotations

import dataclasses
import re

DOWNLOAD_PAGE = 'https://image-net.org/download-images'
DEVKIT = 'ILSVRC2012_devkit_t12.tar.gz'


@dataclasses.dataclass(frozen=True)
class Naming:
  """How the members of a tar are named: a pattern, and its shape in words."""

  pattern: re.Pattern[str]
  shape: str

  def matches(self, name: str) -> bool:
    return self.pattern.fullmatch(name) is not None


# ImageNet's own names: the only members a split is built from.
CLASS_TARS = Naming(re.compile(r'n\d{8}\.tar'), '<wnid>.tar')
TRAIN_IMAGES = Naming(re.compile(r'n\d{8}_\d+\.JPEG'), '<wnid>_<n>.JPEG')
VALIDATION_IMAGES = Naming(
    re.compile(r'ILSVRC2012_val_(\d{8})\.JPEG'), 'ILSVRC2012_val_<8 digits>.JPEG'
)
TEST_IMAGES = Naming(
    re.compile(r'ILSVRC2012_test_\d{8}\.JPEG'), 'ILSVRC2012_test_<8 digits>.JPEG'
)


@dataclasses.dataclass(frozen=True)
class Archive:
  """One split's archive, as image-net.org ships it."""

  split: str
  file_name: str
  image_names: Naming
  nested: bool  # A tar of `<wnid>.tar`, one per class (train), or flat.
  about: str  # Size and role, for instructions.


TRAIN = Archive(
    'train', 'ILSVRC2012_img_train.tar', TRAIN_IMAGES, True, '138 GiB, train'
)
VALIDATION = Archive(
    'validation',
    'ILSVRC2012_img_val.tar',
    VALIDATION_IMAGES,
    False,
    '6.3 GiB, validation',
)
TEST = Archive(
    'test', 'ILSVRC2012_img_test.tar', TEST_IMAGES, False, 'test, no labels'
)
ARCHIVES = (TRAIN, VALIDATION, TEST)
BY_SPLIT = {archive.split: archive for archive in ARCHIVES}

# An extracted copy: each split's images in a folder of the manual dir, named
# as the old TPU recipe (`validation/`) or torchvision (`val/`) names it;
# train's in one `<wnid>/` folder per class, validation's flat or (torchvision)
# in class folders, test's flat.
SPLIT_FOLDERS = {'train': ('train',), 'validation': ('validation', 'val'), 'test': ('test',)}
# Kaggle's `imagenet-object-localization-challenge` copy: the split folders
# `train`, `val`, `test` under this path, and beside `ILSVRC/` the validation
# labels (`ImageId,PredictionString`, the wnid first) and the class list.
KAGGLE_IMAGES = ('ILSVRC', 'Data', 'CLS-LOC')
KAGGLE_SPLIT_FOLDERS = {'train': 'train', 'validation': 'val', 'test': 'test'}
KAGGLE_VAL_SOLUTION = 'LOC_val_solution.csv'
KAGGLE_SYNSETS = 'LOC_synset_mapping.txt'
# The images and classes of the official archives, which a folder is
# counted against (it has no digest to check).
IMAGES_PER_SPLIT = {'train': 1_281_167, 'validation': 50_000, 'test': 100_000}
NUM_CLASSES = 1_000
