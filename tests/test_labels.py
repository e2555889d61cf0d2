"""Labels: train by inner tar, validation by image number (checked against a
devkit when there is one), test -1; and what a label that cannot be trusted says."""

from __future__ import annotations

import gzip

import pytest

from imagenet2012_local.sources import labels
from tests import fake_archives
from tests.helpers import (
    DEVKIT,
    DUMMY_DIR,
    TEST_TAR,
    TRAIN_TAR,
    VAL_TAR,
    build,
    failed_build,
    made_up_build_fails,
    manual_dir_with,
    metadata,
    read_split,
    tar_images,
    two_lines,
    val_images,
)

CLASS_NAMES = labels.class_names_file().read_text().split()
SHIPPED_VAL_WNIDS = labels.tfds_validation_labels().wnids


def _val_number(file_name: str) -> int:
  return int(file_name.removesuffix('.JPEG').rsplit('_', 1)[1])


def test_train_labels_are_the_inner_tar_wnids(dummy_build):
  stored = read_split(dummy_build, 'train')
  archive = tar_images(DUMMY_DIR / TRAIN_TAR)
  assert stored.keys() == archive.keys()
  for file_name, (label, _) in stored.items():
    wnid = archive[file_name][0]
    assert file_name.startswith(wnid + '_')
    assert CLASS_NAMES[label] == wnid


def test_validation_labels_are_looked_up_by_number(dummy_build):
  stored = read_split(dummy_build, 'validation')
  assert stored.keys() == tar_images(DUMMY_DIR / VAL_TAR).keys()
  for file_name, (label, _) in stored.items():
    assert CLASS_NAMES[label] == SHIPPED_VAL_WNIDS[_val_number(file_name) - 1]


def test_test_split_has_label_minus_one(dummy_build):
  stored = read_split(dummy_build, 'test')
  assert stored.keys() == tar_images(DUMMY_DIR / TEST_TAR).keys()
  assert {label for label, _ in stored.values()} == {-1}


def test_devkit_class_names_are_recorded(dummy_build):
  words = metadata(dummy_build)['class_words']
  assert words['n01440764'].startswith('tench')


def test_devkit_labels_equal_the_shipped_ones():
  devkit = labels.read_devkit((DUMMY_DIR / DEVKIT).read_bytes())
  assert devkit.validation_wnids == SHIPPED_VAL_WNIDS[:10]
  assert devkit.words_by_wnid['n01440764'].startswith('tench')


def test_without_devkit_the_shipped_labels_are_used(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'data')
  without_devkit = read_split(tmp_path / 'data', 'validation')
  assert {n: label for n, (label, _) in without_devkit.items()} == {
      n: CLASS_NAMES.index(SHIPPED_VAL_WNIDS[_val_number(n) - 1])
      for n in without_devkit
  }


def test_partial_validation_archive_keeps_labels_by_number(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  everything = tar_images(DUMMY_DIR / VAL_TAR)
  kept = ['ILSVRC2012_val_00000009.JPEG', 'ILSVRC2012_val_00000004.JPEG']
  fake_archives.write_tar(manual / VAL_TAR, [(n, everything[n][1]) for n in kept])
  build(manual, tmp_path / 'data', verify_checksums=False)
  stored = read_split(tmp_path / 'data', 'validation')
  assert {n: CLASS_NAMES[label] for n, (label, _) in stored.items()} == {
      n: SHIPPED_VAL_WNIDS[_val_number(n) - 1] for n in kept
  }


@pytest.mark.parametrize('number', [0, 50_001, 99_999])
def test_validation_number_without_a_label_is_an_error(tmp_path, number):
  images = val_images(2)
  name = f'ILSVRC2012_val_{number:08d}.JPEG'
  data = fake_archives.tar_bytes(images + [(name, images[0][1])])
  what, fix = made_up_build_fails(tmp_path, VAL_TAR, data, labels.LabelError)
  assert f'{name} has no label' in what
  assert 'labels images 1 to 50,000' in what
  assert VAL_TAR in fix


def test_validation_name_without_a_number():
  with pytest.raises(labels.LabelError) as error:
    labels.validation_number('ILSVRC2012_val_1.JPEG')
  what, fix = two_lines(error.value)
  assert "'ILSVRC2012_val_1.JPEG'" in what and 'cannot be looked up' in what
  assert VAL_TAR in fix


# A devkit in the manual dir that cannot be read, or disagrees.


def _devkit_fails(tmp_path, devkit: bytes) -> str:
  """Builds the dummy validation archive beside `devkit`; the message's first line."""
  manual = manual_dir_with(tmp_path, VAL_TAR)
  (manual / DEVKIT).write_bytes(devkit)
  what, fix = failed_build(
      manual, tmp_path / 'data', labels.LabelError, verify_checksums=False
  )
  assert f'Replace it with the official {DEVKIT}' in fix
  assert 'or remove it from the manual dir' in fix
  return what


def _devkit_bytes(tmp_path, val_ground_truth: list[int]) -> bytes:
  """A devkit of the first validation images' classes, with this ground truth."""
  synsets = [
      fake_archives.Synset(ilsvrc2012_id=i, wnid=w, words=w)
      for i, w in enumerate(sorted(set(SHIPPED_VAL_WNIDS[:10])), start=1)
  ]
  fake_archives.write_devkit(tmp_path / DEVKIT, synsets, val_ground_truth)
  return (tmp_path / DEVKIT).read_bytes()


def test_devkit_that_is_not_a_tar_gz(tmp_path):
  what = _devkit_fails(tmp_path, b'<html>404</html>')
  assert f'{DEVKIT} is not a readable .tar.gz' in what


def test_devkit_without_meta_mat(tmp_path):
  path = tmp_path / 'devkit.tar'
  fake_archives.write_tar(path, [('ILSVRC2012_devkit_t12/readme.txt', b'hi')])
  what = _devkit_fails(tmp_path, gzip.compress(path.read_bytes(), mtime=0))
  assert 'has no ILSVRC2012_devkit_t12/data/meta.mat' in what


def test_devkit_ground_truth_with_an_unknown_id(tmp_path):
  what = _devkit_fails(tmp_path, _devkit_bytes(tmp_path, [1, 2, 999]))
  assert 'names id 999, which meta.mat does not define' in what


def test_disagreeing_devkit_stops_the_build(tmp_path):
  wnids = SHIPPED_VAL_WNIDS[:10]
  ids = {w: i for i, w in enumerate(sorted(set(wnids)), start=1)}
  wrong = list(wnids)
  wrong[1] = wnids[0]  # Image 2 gets image 1's class.
  what = _devkit_fails(tmp_path, _devkit_bytes(tmp_path, [ids[w] for w in wrong]))
  assert 'disagree on 1 images, the first ILSVRC2012_val_00000002.JPEG' in what
  assert f'({wnids[0]} vs {wnids[1]})' in what
