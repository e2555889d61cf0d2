"""Which archives a build finds in the manual dir, and what it says when there
are none: what the folder holds instead (a renamed or unfinished download,
extracted images, a file, nothing), from `tfds build` and `build-classic` alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.commands import classic_build
from imagenet2012_local.imagenet2012_local_dataset_builder import MissingArchivesError
from tests.helpers import DUMMY_DIR, TEST_TAR, TRAIN_TAR, VAL_TAR
from tests.helpers import build, manual_dir_with, two_lines

_NAMES = f'{TRAIN_TAR}, {VAL_TAR}, {TEST_TAR}'


def _tfds_build(manual: Path, tmp_path: Path) -> None:
  build(manual, tmp_path / 'data')


def _classic_build(manual: Path, tmp_path: Path) -> None:
  classic_build.build(manual, tmp_path / 'classic')


@pytest.fixture(params=[_tfds_build, _classic_build], ids=['tfds', 'classic'])
def failed(request, tmp_path):
  """Runs a build of a manual dir expected to hold no archive; returns the
  error's two lines, after checking the build left no folder behind."""

  def run(manual: Path) -> tuple[str, str]:
    with pytest.raises(MissingArchivesError) as error:
      request.param(manual, tmp_path)
    assert not (tmp_path / 'data').exists()
    assert not (tmp_path / 'classic').exists()
    return two_lines(error.value)

  return run


def _manual(tmp_path: Path, files: dict[str, Path | None]) -> Path:
  """A manual dir holding `files`: {relative path: dummy file to copy there,
  or None for an empty file}."""
  manual = tmp_path / 'manual'
  manual.mkdir()
  for name, source in files.items():
    (manual / name).parent.mkdir(parents=True, exist_ok=True)
    if source is None:
      (manual / name).write_bytes(b'')
    else:
      shutil.copy(source, manual / name)
  return manual


def test_other_files_are_named(tmp_path, failed):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'notes.txt').write_text('not an archive')
  what, fix = failed(manual)
  assert what == (
      f'No ImageNet 2012 archive in {manual}: expected {_NAMES} (any of them);'
      ' it holds notes.txt.'
  )
  assert 'image-net.org' in fix and '--manual_dir' in fix


def test_an_empty_manual_dir(tmp_path, failed):
  manual = tmp_path / 'manual'
  manual.mkdir()
  what, fix = failed(manual)
  assert what.endswith(f'{manual}: expected {_NAMES} (any of them); it is empty.')
  assert 'Download them from https://image-net.org/download-images' in fix


def test_a_manual_dir_that_does_not_exist(tmp_path, failed):
  what, fix = failed(tmp_path / 'typo')
  assert what == f'The manual dir {tmp_path / "typo"} does not exist.'
  assert fix.startswith(f'Pass the folder that holds {_NAMES}')


def test_a_manual_dir_that_is_a_file(tmp_path, failed):
  """The archive's own path given as the manual dir (NotADirectoryError before)."""
  archive = _manual(tmp_path, {VAL_TAR: DUMMY_DIR / VAL_TAR}) / VAL_TAR
  what, fix = failed(archive)
  assert what == f'The manual dir {archive} is a file, not a folder.'
  assert fix.startswith(f'Pass the folder that holds it, {archive.parent}, as --manual_dir')


@pytest.mark.parametrize(
    'name, archive, found',
    [
        ('ILSVRC2012_img_val (1).tar', VAL_TAR, 'looks like it under another name'),
        ('ILSVRC2012_img_val(2).tar', VAL_TAR, 'looks like it under another name'),
        ('ilsvrc2012_img_val.TAR', VAL_TAR, 'looks like it under another name'),
        (f'{TRAIN_TAR}.part', TRAIN_TAR, 'looks like its unfinished download'),
        (f'{TRAIN_TAR}.crdownload', TRAIN_TAR, 'looks like its unfinished download'),
        (f'{TEST_TAR}.download', TEST_TAR, 'looks like its unfinished download'),
    ],
)
def test_a_renamed_or_unfinished_download(tmp_path, failed, name, archive, found):
  manual = _manual(tmp_path, {name: DUMMY_DIR / archive})
  what, fix = failed(manual)
  assert what == (
      f'No ImageNet 2012 archive in {manual}, but {name} {found} ({archive}).'
  )
  if 'unfinished' in found:
    assert fix.startswith(f'Let the download finish, then rename it to {manual / archive}')
  else:
    assert fix.startswith(f'Rename it to {manual / archive}')


def test_an_archive_name_that_is_a_folder(tmp_path, failed):
  """Some unpackers extract `X.tar` into a folder named `X.tar`."""
  manual = _manual(tmp_path, {f'{VAL_TAR}/ILSVRC2012_val_00000001.JPEG': None})
  what, fix = failed(manual)
  assert what == (
      f'No ImageNet 2012 archive in {manual}, but {VAL_TAR} is a folder, not the'
      f' archive ({VAL_TAR}).'
  )
  assert f'at {manual / VAL_TAR}, as a file' in fix


def test_another_tasks_archive_is_not_taken_for_train(tmp_path, failed):
  manual = _manual(tmp_path, {'ILSVRC2012_img_train_t3.tar': None})
  what, _ = failed(manual)
  assert what.endswith('it holds ILSVRC2012_img_train_t3.tar.')


@pytest.mark.parametrize(
    'extracted',
    [  # train/<wnid>/ and val/ are layouts a build reads: test_folder_inputs.
        'n01440764/n01440764_10026.JPEG',
        'n01440764.tar',
        'ILSVRC2012_val_00000001.JPEG',
        'ILSVRC2012_img_val/ILSVRC2012_val_00000001.JPEG',
        'ILSVRC2012_test_00000001.JPEG',
    ],
)
def test_extracted_images(tmp_path, failed, extracted):
  manual = _manual(tmp_path, {extracted: None, 'README.txt': None})
  what, fix = failed(manual)
  assert what.startswith(
      f'{manual} holds extracted images ({extracted}), but neither the ImageNet'
      f' 2012 archives ({_NAMES}) nor an extracted copy in a layout the build'
      ' reads (train/<wnid>/ with validation/ or val/'
  )
  assert fix.startswith('Arrange the images as one of those layouts (see docs/inputs.md)')


def test_tfds_own_check_of_the_manual_dir_becomes_ours(tmp_path):
  """Where TFDS's DownloadManager refuses the manual dir itself (a page of
  instructions, or NotADirectoryError for a file), the builder says ours."""
  builder = tfds.builder('imagenet2012_local', data_dir=tmp_path / 'data')
  archive = _manual(tmp_path, {VAL_TAR: DUMMY_DIR / VAL_TAR}) / VAL_TAR
  for manual, what in [
      (tmp_path / 'typo', f'The manual dir {tmp_path / "typo"} does not exist.'),
      (archive, f'The manual dir {archive} is a file, not a folder.'),
  ]:
    manager = tfds.download.DownloadManager(
        download_dir=tmp_path / 'downloads',
        manual_dir=manual,
        manual_dir_instructions=builder.MANUAL_DOWNLOAD_INSTRUCTIONS,
    )
    with pytest.raises(MissingArchivesError) as error:
      builder._split_sources(manager)  # pylint: disable=protected-access
    assert two_lines(error.value)[0] == what
    assert isinstance(error.value.__cause__, (AssertionError, NotADirectoryError))


def test_any_subset_of_archives_builds_those_splits(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR, TEST_TAR)
  builder = build(manual, tmp_path / 'data')
  assert set(builder.info.splits) == {'validation', 'test'}
