"""Builds from small archives, read back with tfds.load: labels, bytes, fixes, errors."""

from __future__ import annotations

import io
import os
import json

import PIL.Image
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local import checksum_tables
from imagenet2012_local import fake_archives
from imagenet2012_local import image_fixes
from imagenet2012_local import labels
from imagenet2012_local import settings
from imagenet2012_local import verification
from tests.helpers import (
    DEVKIT,
    DUMMY_DIR,
    TEST_TAR,
    TRAIN_TAR,
    VAL_TAR,
    build,
    manual_dir_with,
    read_split,
    tar_images,
)

CLASS_NAMES = labels.class_names_file().read_text().split()
SHIPPED_VAL_WNIDS = labels.tfds_validation_labels().wnids
EXPECTED_FIXES = {
    'train': {'n01739381_1309.JPEG', 'n04596742_4225.JPEG', 'n02105855_2933.JPEG'},
    'validation': {'ILSVRC2012_val_00000003.JPEG'},
    'test': {'ILSVRC2012_test_00000002.JPEG'},
}
SPLIT_TARS = {'train': TRAIN_TAR, 'validation': VAL_TAR, 'test': TEST_TAR}


def _metadata(data_dir) -> dict:
  return json.loads(
      next(data_dir.glob('imagenet2012_local/*/metadata.json')).read_text()
  )


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


@pytest.mark.parametrize('split', ['train', 'validation', 'test'])
def test_unfixed_images_keep_their_exact_bytes(dummy_build, split):
  stored = read_split(dummy_build, split)
  archive = tar_images(DUMMY_DIR / SPLIT_TARS[split])
  kept = {name for name in archive if name not in EXPECTED_FIXES[split]}
  assert kept  # Grayscale and RGB JPEGs among them.
  for name in kept:
    assert stored[name][1] == archive[name][1], name


@pytest.mark.parametrize('split', ['train', 'validation', 'test'])
def test_cmyk_and_png_become_rgb_jpegs_and_are_recorded(dummy_build, split):
  stored = read_split(dummy_build, split)
  archive = tar_images(DUMMY_DIR / SPLIT_TARS[split])
  assert set(_metadata(dummy_build)['fixed_images'][split]) == EXPECTED_FIXES[split]
  for name in EXPECTED_FIXES[split]:
    header = image_fixes.read_jpeg_header(stored[name][1])
    assert header is not None and header.components == 3, name
    with PIL.Image.open(io.BytesIO(archive[name][1])) as original:
      assert (header.width, header.height) == original.size


def test_grayscale_jpegs_are_kept(dummy_build):
  train = read_split(dummy_build, 'train')
  header = image_fixes.read_jpeg_header(train['n01440764_18.JPEG'][1])
  assert header.components == 1


def test_archives_are_recorded_as_verified(dummy_build):
  table = checksum_tables.read_table(DUMMY_DIR.parent / 'checksums' / 'dummy_data.tsv')
  known = {row.name: row for row in table}
  assert _metadata(dummy_build)['archives'] == {
      tar: {
          'split': split,
          'bytes': known[tar].size,
          'md5': known[tar].md5,
          'status': 'verified',
      }
      for split, tar in SPLIT_TARS.items()
  }


def test_devkit_class_names_are_recorded(dummy_build):
  words = _metadata(dummy_build)['class_words']
  assert words['n01440764'].startswith('tench')


def test_devkit_labels_equal_the_shipped_ones():
  devkit = labels.read_devkit((DUMMY_DIR / DEVKIT).read_bytes())
  assert devkit.validation_wnids == SHIPPED_VAL_WNIDS[:10]
  assert devkit.words_by_wnid['n01440764'].startswith('tench')


def test_without_devkit_the_shipped_labels_are_used(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'data')
  with_devkit = read_split(tmp_path / 'data', 'validation')
  assert {n: label for n, (label, _) in with_devkit.items()} == {
      n: CLASS_NAMES.index(SHIPPED_VAL_WNIDS[_val_number(n) - 1])
      for n in with_devkit
  }


def test_any_subset_of_archives_builds_those_splits(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR, TEST_TAR)
  builder = build(manual, tmp_path / 'data')
  assert set(builder.info.splits) == {'validation', 'test'}


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


def test_disagreeing_devkit_stops_the_build(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  wnids = SHIPPED_VAL_WNIDS[:10]
  wrong = list(wnids)
  wrong[1] = wnids[0]  # Image 2 gets image 1's class.
  synsets = [
      fake_archives.Synset(ilsvrc2012_id=i, wnid=w, words=w)
      for i, w in enumerate(sorted(set(wnids)), start=1)
  ]
  ids = {s.wnid: s.ilsvrc2012_id for s in synsets}
  fake_archives.write_devkit(manual / DEVKIT, synsets, [ids[w] for w in wrong])
  with pytest.raises(labels.LabelError) as error:
    build(manual, tmp_path / 'data', verify_checksums=False)
  message = str(error.value)
  assert 'disagree on 1 images, the first ILSVRC2012_val_00000002.JPEG' in message
  assert f'({wnids[0]} vs {wnids[1]})' in message
  assert not tfds.builder('imagenet2012_local', data_dir=tmp_path / 'data').is_prepared()


def _corrupt_one_byte(path) -> None:
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF  # Inside an image: the tar still reads.
  path.write_bytes(bytes(data))


def _hash_with(monkeypatch, algorithm: str) -> None:
  """Makes `algorithm` the digest this CPU computes fastest."""
  others = tuple(a for a in checksum_tables.DIGEST_NAMES if a != algorithm)
  monkeypatch.setattr(
      checksum_tables, 'digests_fastest_first', lambda: (algorithm, *others)
  )


def _known_copy(name: str) -> checksum_tables.ArchiveDigest:
  table = checksum_tables.read_table(DUMMY_DIR.parent / 'checksums' / 'dummy_data.tsv')
  return next(d for d in table if d.name == name)


@pytest.mark.parametrize('algorithm', ['md5', 'sha256'])
def test_a_digest_mismatch_fails_before_publishing(tmp_path, monkeypatch, algorithm):
  _hash_with(monkeypatch, algorithm)
  manual = manual_dir_with(tmp_path, VAL_TAR)
  _corrupt_one_byte(manual / VAL_TAR)
  with pytest.raises(verification.ChecksumError) as error:
    build(manual, tmp_path / 'data')
  message = str(error.value)
  assert str(manual / VAL_TAR) in message
  assert f'has {checksum_tables.DIGEST_NAMES[algorithm]} ' in message
  assert _known_copy(VAL_TAR).digest(algorithm) in message
  assert settings.VERIFY_ENV_VAR in message  # Says how to opt out.
  assert not tfds.builder('imagenet2012_local', data_dir=tmp_path / 'data').is_prepared()
  assert not list((tmp_path / 'data').glob('**/*.tfrecord*'))


def test_wrong_size_fails_at_once(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  with open(manual / VAL_TAR, 'ab') as f:
    f.write(b'\0' * 512)
  with pytest.raises(verification.ChecksumError, match='is 31,232 bytes; expected 30,720'):
    build(manual, tmp_path / 'data')


@pytest.mark.parametrize('algorithm', ['md5', 'sha256'])
def test_either_digest_verifies_and_records_the_md5(tmp_path, monkeypatch, algorithm):
  _hash_with(monkeypatch, algorithm)
  manual = manual_dir_with(tmp_path, VAL_TAR, DEVKIT)
  build(manual, tmp_path / 'data')
  archives = _metadata(tmp_path / 'data')['archives']
  assert archives[VAL_TAR]['status'] == 'verified'
  assert archives[VAL_TAR]['md5'] == _known_copy(VAL_TAR).md5


def test_md5_is_used_where_the_table_knows_no_sha256(tmp_path, monkeypatch):
  _hash_with(monkeypatch, 'sha256')
  archive = tmp_path / 'some_archive.tar'
  archive.write_bytes((DUMMY_DIR / VAL_TAR).read_bytes())
  known = _known_copy(VAL_TAR)
  table = tmp_path / 'md5_only.tsv'
  table.write_text(f'{archive.name}\t{archive.stat().st_size}\t{known.md5}\t-\n')
  monkeypatch.setenv(settings.EXTRA_TABLES_ENV_VAR, str(table))
  check = verification.ArchiveCheck(archive, enabled=True)
  assert check.algorithm == 'md5'
  check.update(archive.read_bytes())
  check.finish()
  assert check.summary() == {
      'bytes': archive.stat().st_size, 'md5': known.md5, 'status': 'verified'
  }


def test_both_digests_are_timed():
  assert sorted(checksum_tables.digests_fastest_first()) == ['md5', 'sha256']


def test_builder_argument_turns_the_gate_off(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  _corrupt_one_byte(manual / VAL_TAR)
  build(manual, tmp_path / 'data', verify_checksums=False)
  assert _metadata(tmp_path / 'data')['archives'][VAL_TAR] == {
      'split': 'validation',
      'bytes': (manual / VAL_TAR).stat().st_size,
      'md5': None,
      'status': 'not verified: the check is turned off',
  }


def test_environment_variable_turns_the_gate_off(tmp_path, monkeypatch):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  _corrupt_one_byte(manual / VAL_TAR)
  monkeypatch.setenv(settings.VERIFY_ENV_VAR, '0')
  build(manual, tmp_path / 'data')
  assert len(read_split(tmp_path / 'data', 'validation')) == 10


def test_a_verified_archive_is_not_hashed_again(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'first')
  build(manual, tmp_path / 'second')
  second = _metadata(tmp_path / 'second')['archives'][VAL_TAR]
  assert second['status'] == 'verified (remembered from an earlier build)'
  assert second['md5'] == _metadata(tmp_path / 'first')['archives'][VAL_TAR]['md5']
  # A changed file (new mtime, new bytes) is hashed again, and caught.
  _corrupt_one_byte(manual / VAL_TAR)
  with pytest.raises(verification.ChecksumError):
    build(manual, tmp_path / 'third')


def test_cloud_paths_are_not_turned_into_local_ones():
  from imagenet2012_local import paths

  assert os.fspath(paths.absolute('gs://bucket/raw/ILSVRC2012_img_val.tar')) == (
      'gs://bucket/raw/ILSVRC2012_img_val.tar'
  )
  assert os.fspath(paths.absolute('raw/x.tar')) == os.path.abspath('raw/x.tar')
