"""The shipped reference files of the variants: unchanged, complete, and read right."""

from __future__ import annotations

import hashlib

import pytest

from imagenet2012_local.sources import labels
from imagenet2012_local.variants import variant_files

# From the provenance table of imagenet2012_local/variant_data/README.md (and
# upstream TFDS's checksums.tsv of imagenet2012_subset and imagenet2012_real).
SHA256 = {
    'simclr_subsets/1percent.txt': '71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17',
    'simclr_subsets/10percent.txt': '6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091',
    'reassessed_imagenet/real.json': 'd83e9bff374c631aae8439eb064c7019acc56e1b3bc3f56b8380c2a710b0220b',
}
CLASS_NAMES = labels.class_names_file().read_text().split()


@pytest.mark.parametrize('path', sorted(SHA256))
def test_shipped_files_are_the_published_ones(path):
  data = (variant_files.DATA_DIR / path).read_bytes()
  assert hashlib.sha256(data).hexdigest() == SHA256[path]
  readme = (variant_files.DATA_DIR / 'README.md').read_text()
  assert f'`{path}`' in readme and SHA256[path] in readme
  assert (variant_files.DATA_DIR / path).parent.joinpath('LICENSE').exists()


@pytest.mark.parametrize('config, count', [('1pct', 12_811), ('10pct', 128_116)])
def test_subset_lists_are_distinct_train_images_of_every_class(config, count):
  names = [name.decode() for name in variant_files.subset_names(config)]
  assert len(names) == len(set(names)) == count
  assert names == sorted(names)
  assert {name.split('_')[0] for name in names} == set(CLASS_NAMES)


def test_one_percent_is_within_ten_percent():
  one, ten = (set(variant_files.subset_names(c)) for c in ('1pct', '10pct'))
  assert one <= ten


# Hand-checked against the images: val_2 is a skier on an alp, val_3 a
# Shetland sheepdog that also looks like a collie, val_4 a soup bowl, val_5 a
# cradle with a teddy bear; the raters agreed on no label for val_1.
FIRST_REAL_LABELS = {
    'ILSVRC2012_val_00000001.JPEG': (),
    'ILSVRC2012_val_00000002.JPEG': (970, 795),  # alp, ski
    'ILSVRC2012_val_00000003.JPEG': (230, 231),  # Shetland sheepdog, collie
    'ILSVRC2012_val_00000004.JPEG': (809,),  # soup bowl
    'ILSVRC2012_val_00000005.JPEG': (516, 850),  # cradle, teddy bear
    'ILSVRC2012_val_00000006.JPEG': (57,),  # garter snake
    'ILSVRC2012_val_00050000.JPEG': (355,),  # llama, the last entry
}


def test_real_labels_by_file_number():
  found = {name: variant_files.real_labels(name) for name in FIRST_REAL_LABELS}
  assert found == FIRST_REAL_LABELS


def test_real_labels_agree_with_the_original_labels_by_file_number():
  # The original labels (TFDS's, by file number) are among the ReaL labels of
  # 42,164 images; entries one off would agree on ~50.
  wnids = labels.tfds_validation_labels().wnids
  original = [CLASS_NAMES.index(wnid) for wnid in wnids]
  real = [variant_files.real_labels(f'ILSVRC2012_val_{k:08d}.JPEG') for k in range(1, 50_001)]
  assert sum(label in labels_ for label, labels_ in zip(original, real)) == 42_164
  assert sum(not labels_ for labels_ in real) == 3_163
  for name, expected in FIRST_REAL_LABELS.items():
    if expected:
      assert original[labels.validation_number(name) - 1] == expected[0]
