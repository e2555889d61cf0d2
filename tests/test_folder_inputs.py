"""Manual dirs that hold extracted images instead of the tars.

The old recipe's extracted tree, torchvision's class folders and Kaggle's
imagenet-object-localization-challenge copy of the dummy archives must give
the same dataset as the tars: byte-identical shards from `tfds build` and
from `build-classic`. Labels the input carries (class folders, Kaggle's CSV)
must agree with the file-number labels; a tree that mixes layouts or holds
stray files fails in two lines, with nothing published.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenet2012_local import errors
from imagenet2012_local import settings
from imagenet2012_local.sources import image_reads
from tests import input_trees
from tests.helpers import (DEVKIT, DUMMY_DIR, TEST_TAR, TRAIN_TAR, VAL_TAR, build,
                           failed_build, tar_images)

ALL_SPLITS = ('train', 'validation', 'test')

# name: (writes the tree into a folder, the splits it holds)
LAYOUTS = {
    'extracted': (input_trees.extracted_tree, ALL_SPLITS),
    'extracted_val': (lambda d: input_trees.extracted_tree(d, val_dir='val'), ALL_SPLITS),
    'extracted_devkit': (lambda d: input_trees.extracted_tree(d, devkit=True), ALL_SPLITS),
    'torchvision': (input_trees.torchvision_tree, ('train', 'validation')),
    'kaggle': (input_trees.kaggle_tree, ALL_SPLITS),
    # What a real Kaggle download also holds: annotations, image lists, CSVs.
    'kaggle_extras': (lambda d: input_trees.kaggle_tree(d, extras=True), ALL_SPLITS),
}
# A folder's images are never checked against a digest: a build from one of
# these never says "verified" (the devkit beside a tree may rightly be).
WITHOUT_ARCHIVES = [name for name in LAYOUTS if 'devkit' not in name]
_VERIFIED = re.compile(r'"status"\s*:\s*"verified"')


def _tree(tmp_path_factory, layout: str) -> Path:
  write, _ = LAYOUTS[layout]
  return write(tmp_path_factory.mktemp(f'{layout}_tree'))


@pytest.fixture(scope='module', params=list(LAYOUTS))
def folder_build(request, tmp_path_factory) -> tuple[str, Path, Path]:
  """(layout, its manual dir, data dir of the TFDS build of the dummy data in
  that layout)."""
  layout = request.param
  manual = _tree(tmp_path_factory, layout)
  data_dir = tmp_path_factory.mktemp(f'{layout}_build')
  with input_trees.isolated_settings(data_dir / 'cache'):
    build(manual, data_dir)
  return layout, manual, data_dir


# The trees themselves.


def _relative_files(folder: Path) -> dict[str, bytes]:
  return {p.relative_to(folder).as_posix(): p.read_bytes() for p in input_trees.files_under(folder)}


def test_extracted_tree_holds_every_image_with_its_bytes(tmp_path):
  files = _relative_files(input_trees.extracted_tree(tmp_path))
  expected = {
      **{f'train/{wnid}/{name}': data for name, (wnid, data) in tar_images(DUMMY_DIR / TRAIN_TAR).items()},
      **{f'validation/{name}': data for name, (_, data) in tar_images(DUMMY_DIR / VAL_TAR).items()},
      **{f'test/{name}': data for name, (_, data) in tar_images(DUMMY_DIR / TEST_TAR).items()},
  }
  assert files == expected
  assert [len([f for f in files if f.startswith(s)]) for s in ALL_SPLITS] == [26, 10, 5]


def test_extracted_tree_with_val_and_devkit(tmp_path):
  files = _relative_files(input_trees.extracted_tree(tmp_path, val_dir='val', devkit=True))
  assert len([f for f in files if f.startswith('val/ILSVRC2012_val_')]) == 10
  assert not [f for f in files if f.startswith('validation/')]
  assert files[DEVKIT] == (DUMMY_DIR / DEVKIT).read_bytes()


def test_torchvision_tree_sorts_validation_into_its_classes(tmp_path):
  files = _relative_files(input_trees.torchvision_tree(tmp_path))
  val = {f: d for f, d in files.items() if f.startswith('val/')}
  assert len(val) == 10 and len(files) == 36
  tar = tar_images(DUMMY_DIR / VAL_TAR)
  for path, data in val.items():
    _, wnid, name = path.split('/')
    assert wnid == input_trees.validation_wnid(name)
    assert data == tar[name][1]
  # More than one class folder, so a misplaced image is a real disagreement.
  assert len({path.split('/')[1] for path in val}) > 1


def test_kaggle_tree_has_its_data_folders_and_text_files(tmp_path):
  root = input_trees.kaggle_tree(tmp_path)
  files = _relative_files(root)
  data = input_trees.KAGGLE_DATA.as_posix()
  assert len([f for f in files if f.startswith(f'{data}/train/n')]) == 26
  assert len([f for f in files if re.fullmatch(rf'{data}/val/ILSVRC2012_val_\d{{8}}\.JPEG', f)]) == 10
  assert len([f for f in files if re.fullmatch(rf'{data}/test/ILSVRC2012_test_\d{{8}}\.JPEG', f)]) == 5
  lines = (root / input_trees.KAGGLE_VAL_SOLUTION).read_text().splitlines()
  assert lines[0] == 'ImageId,PredictionString' and len(lines) == 11
  for line in lines[1:]:
    image_id, prediction = line.split(',')
    assert re.fullmatch(r'ILSVRC2012_val_\d{8}', image_id)
    assert prediction.split()[0] == input_trees.validation_wnid(f'{image_id}.JPEG')
    assert len(prediction.split()) % 5 == 0
  mapping = (root / input_trees.KAGGLE_SYNSET_MAPPING).read_text().splitlines()
  assert [line.split()[0] for line in mapping] == input_trees.class_wnids()
  assert len(mapping) == 1000
  assert set(files) == set(_relative_files(input_trees.kaggle_tree(tmp_path / 'again')))


def test_kaggle_extras_are_beside_the_data(tmp_path):
  files = _relative_files(input_trees.kaggle_tree(tmp_path, extras=True))
  assert 'LOC_train_solution.csv' in files and 'LOC_sample_submission.csv' in files
  assert len([f for f in files if f.startswith('ILSVRC/Annotations/CLS-LOC/')]) == 36
  assert len([f for f in files if f.startswith('ILSVRC/ImageSets/CLS-LOC/')]) == 3


# Builds from each layout.


def test_the_same_shards_as_the_tar_build(folder_build, dummy_build):
  layout, _, data_dir = folder_build
  _, splits = LAYOUTS[layout]
  expected = input_trees.split_shard_files(input_trees.shard_files(dummy_build), splits)
  got = input_trees.shard_files(data_dir)
  assert sorted(got) == sorted(expected)
  for name, data in expected.items():
    assert got[name] == data, f'{layout}: {name} differs from the tar build'


@pytest.mark.parametrize('folder_build', WITHOUT_ARCHIVES, indirect=True)
def test_a_folder_is_never_called_verified(folder_build):
  _, manual, data_dir = folder_build
  dataset_info = input_trees.version_dir(data_dir) / 'dataset_info.json'
  assert not _VERIFIED.search(dataset_info.read_text())
  for path in input_trees.version_dir(data_dir).glob('*.json'):
    text = path.read_text()
    assert not _VERIFIED.search(text), path.name
    # Whatever shape the metadata takes, no entry that names the folder (or
    # a folder in it) has a status starting with "verified".
    for entry in _dicts(json.loads(text)):
      if any(isinstance(v, str) and str(manual) in v for v in entry.values()):
        status = str(entry.get('status', ''))
        assert not status.lower().startswith('verified'), (path.name, entry)


def _dicts(value) -> Iterator[dict]:
  """Every dict in a JSON value, nested ones too."""
  if isinstance(value, dict):
    yield value
    value = list(value.values())
  if isinstance(value, list):
    for item in value:
      yield from _dicts(item)


@pytest.mark.parametrize('layout', ['extracted', 'torchvision', 'kaggle'])
def test_build_classic_writes_the_same_files_as_from_the_tars(
    layout, classic_reference, tmp_path
):
  manual = LAYOUTS[layout][0](tmp_path / 'manual')
  output_dir = tmp_path / 'out'
  assert input_trees.build_classic(manual, output_dir) == 0
  expected = input_trees.split_shard_files(
      input_trees.classic_files(classic_reference), LAYOUTS[layout][1]
  )
  got = input_trees.classic_files(output_dir)
  assert sorted(got) == sorted(expected)
  for name, data in expected.items():
    assert got[name] == data, f'{layout}: {name} differs from the tar build'


def test_hidden_dot_files_are_ignored(tmp_path, dummy_build):
  manual = input_trees.extracted_tree(tmp_path / 'manual')
  for folder in ('.', 'train', 'train/n01440764', 'validation', 'test'):
    (manual / folder / '.DS_Store').write_bytes(b'\0\0\0\1Bud1' + bytes(100))
  build(manual, tmp_path / 'data')
  assert input_trees.shard_files(tmp_path / 'data') == input_trees.shard_files(dummy_build)


# Labels the input carries must agree with the file-number labels.

# The first of the two misplaced images, by number and in the tar's order.
_FIRST, _SECOND = 'ILSVRC2012_val_00000004', 'ILSVRC2012_val_00000007'


def _another_class(wnid: str) -> str:
  return next(w for w in input_trees.class_wnids() if w != wnid)


def test_torchvision_validation_in_the_wrong_class_folder(tmp_path):
  manual = input_trees.torchvision_tree(tmp_path / 'manual')
  for image_id in (_FIRST, _SECOND):
    name = f'{image_id}.JPEG'
    wnid = input_trees.validation_wnid(name)
    wrong = manual / 'val' / _another_class(wnid)
    wrong.mkdir(exist_ok=True)
    shutil.move(manual / 'val' / wnid / name, wrong / name)
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert _FIRST in first


def test_kaggle_solution_that_disagrees(tmp_path):
  manual = input_trees.kaggle_tree(tmp_path / 'manual')
  rows = []
  for image_id, prediction in input_trees.kaggle_val_rows():
    if image_id in (_FIRST, _SECOND):
      wnid = prediction.split()[0]
      prediction = prediction.replace(wnid, _another_class(wnid))
    rows.append((image_id, prediction))
  input_trees.write_kaggle_val_solution(manual, rows)
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert _FIRST in first


# Mixed layouts and stray files.


def test_extracted_and_kaggle_together(tmp_path):
  manual = input_trees.extracted_tree(tmp_path / 'manual')
  input_trees.kaggle_tree(manual)
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert 'train' in first and 'ILSVRC' in first


def test_tars_and_a_train_folder_together(tmp_path):
  manual = input_trees.extracted_tree(tmp_path / 'manual')
  input_trees.tars(manual, TRAIN_TAR, VAL_TAR)
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert '.tar' in first and 'train' in first


@pytest.mark.parametrize(
    'layout, stray',
    [
        ('extracted', 'train/n01440764/notes.txt'),
        ('extracted', 'validation/notes.txt'),
        ('torchvision', 'val/n01440764/notes.txt'),
        ('kaggle', 'ILSVRC/Data/CLS-LOC/train/n01440764/notes.txt'),
    ],
)
def test_a_stray_file(layout, stray, tmp_path):
  manual = LAYOUTS[layout][0](tmp_path / 'manual')
  (manual / stray).parent.mkdir(parents=True, exist_ok=True)
  (manual / stray).write_text('not an image\n')
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert 'notes.txt' in first


def test_a_kaggle_class_list_that_is_not_imagenets(tmp_path):
  manual = input_trees.kaggle_tree(tmp_path / 'manual')
  mapping = manual / 'LOC_synset_mapping.txt'
  lines = mapping.read_text().splitlines()
  mapping.write_text('\n'.join(['n99999999 not a class', *lines[1:]]) + '\n')
  first, fix = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert 'LOC_synset_mapping.txt' in first and 'n99999999' in first
  assert fix.startswith('Download LOC_synset_mapping.txt from Kaggle again')


def test_a_train_folder_without_class_folders(tmp_path):
  manual = input_trees.extracted_tree(tmp_path / 'manual')
  for image in list((manual / 'train').glob('*/*.JPEG')):
    image.rename(manual / 'train' / image.name)
  for folder in (manual / 'train').glob('n*'):
    if folder.is_dir():
      folder.rmdir()
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert 'images directly' in first and 'one <wnid>/ folder per class' in first


def test_a_file_changed_after_listing_fails(tmp_path, monkeypatch):
  """A file that grows between the listing and its read is not written."""
  manual = input_trees.extracted_tree(tmp_path / 'manual')
  victim = sorted((manual / 'validation').iterdir())[0]
  real = image_reads.read_files

  def grown(paths, in_flight):
    victim.write_bytes(victim.read_bytes() + b'\0')
    return real(paths, in_flight)

  monkeypatch.setattr(image_reads, 'read_files', grown)
  monkeypatch.setenv(settings.WORKERS_ENV_VAR, '1')  # Read in this process.
  first, _ = failed_build(manual, tmp_path / 'data', errors.Imagenet2012LocalError)
  assert victim.name in first and 'changed while the build ran' in first
