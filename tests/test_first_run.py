"""A first run without surprises: every build says which splits it builds and
which archives it did not find; an archive added later is not silently
ignored; `tfds.load` of a dataset never built fails in two lines and leaves
no folder behind; `class_words` names the 1,000 classes only."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.commands import classic_build
from imagenet2012_local.commands import cli
from imagenet2012_local.sources import labels
from imagenet2012_local.imagenet2012_local_dataset_builder import MissingArchivesError
from imagenet2012_local.gate.prepare_checks import SplitNotBuiltError
from tests.helpers import DEVKIT, DUMMY_DIR, NAME, TEST_TAR, TRAIN_TAR, VAL_TAR
from tests.helpers import build, manual_dir_with, metadata, read_split, two_lines

_ADD_LATER = 'to add a split later, put its archive there and rerun with --overwrite.'


def _building_lines(captured: str) -> list[str]:
  return [line for line in captured.splitlines() if line.startswith('Building ')]


def _tfds_build(manual: Path, tmp_path: Path) -> None:
  build(manual, tmp_path / 'data')


def _classic_build(manual: Path, tmp_path: Path) -> None:
  classic_build.build(manual, tmp_path / 'classic', {'train': 2, 'validation': 2, 'test': 2})


@pytest.mark.parametrize('run', [_tfds_build, _classic_build], ids=['tfds', 'classic'])
def test_a_partial_manual_dir_says_what_is_built_and_what_is_not(tmp_path, capfd, run):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  (manual / f'{TRAIN_TAR}.part').write_bytes(b'')  # Still downloading.
  run(manual, tmp_path)
  assert _building_lines(capfd.readouterr().err) == [
      f'Building validation from {VAL_TAR}; not found in {manual}:'
      f' {TRAIN_TAR} (train, {TRAIN_TAR}.part looks like its unfinished'
      f' download), {TEST_TAR} (test, optional); {_ADD_LATER}'
  ]


@pytest.mark.parametrize('run', [_tfds_build, _classic_build], ids=['tfds', 'classic'])
def test_a_full_manual_dir_says_so_in_one_line(tmp_path, capfd, run):
  manual = manual_dir_with(tmp_path, TRAIN_TAR, VAL_TAR, TEST_TAR)
  run(manual, tmp_path)
  assert _building_lines(capfd.readouterr().err) == [
      f'Building train from {TRAIN_TAR}, validation from {VAL_TAR}, test from'
      f' {TEST_TAR} in {manual}.'
  ]


def test_an_archive_added_after_a_build_is_not_silently_ignored(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = tmp_path / 'data'
  build(manual, data)
  validation = read_split(data, 'validation')
  build(manual, data)  # Nothing added: reused, as TFDS does.

  shutil.copy(DUMMY_DIR / TEST_TAR, manual / TEST_TAR)
  with pytest.raises(SplitNotBuiltError) as error:
    build(manual, data)
  what, fix = two_lines(error.value)
  version_dir = data / NAME / '5.1.0'
  assert what == f'{version_dir} has no test split, but {manual} now holds {TEST_TAR}.'
  assert fix.startswith('To build it, rerun with --overwrite')
  # Refused, not half-done: the prepared dataset is intact, and loads.
  assert set(tfds.builder(NAME, data_dir=data).info.splits) == {'validation'}
  assert read_split(data, 'validation') == validation

  overwrite = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
  builder = tfds.builder(NAME, data_dir=data)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=manual, download_mode=overwrite
      )
  )
  assert set(builder.info.splits) == {'validation', 'test'}
  assert read_split(data, 'validation') == validation


def test_tfds_load_of_a_dataset_never_built(tmp_path):
  """The README's `tfds.load` before any build: two lines, no folder left."""
  data = tmp_path / 'data'
  data.mkdir()
  with pytest.raises(MissingArchivesError) as error:
    tfds.load(NAME, split='train', data_dir=data)
  what, fix = two_lines(error.value)
  assert what == f'The manual dir {data / "downloads" / "manual"} does not exist.'
  assert '--manual_dir' in fix and 'DownloadConfig(manual_dir=' in fix
  assert not list(data.iterdir())


def test_tfds_load_of_a_prepared_dataset_needs_no_archives(tmp_path):
  data = tmp_path / 'data'
  build(manual_dir_with(tmp_path, VAL_TAR), data)
  assert len(read_split(data, 'validation')) == 10


def test_class_words_name_the_1000_classes_only(tmp_path):
  """The devkit's meta.mat lists the WordNet nodes above the classes too."""
  devkit = labels.read_devkit((DUMMY_DIR / DEVKIT).read_bytes())
  classes = set(labels.class_names_file().read_text().split())
  assert devkit.words_by_wnid and set(devkit.words_by_wnid) <= classes
  data = tmp_path / 'data'
  build(manual_dir_with(tmp_path, VAL_TAR, DEVKIT), data)
  words = metadata(data)['class_words']
  assert words == devkit.words_by_wnid
  assert words['n01440764'].startswith('tench')


@pytest.mark.parametrize('chosen, level', [(None, '1'), ('0', '0'), ('3', '3')])
def test_the_command_quiets_tensorflow_info_unless_told(tmp_path, monkeypatch, capsys, chosen, level):
  """`imagenet2012-local` sets TensorFlow's log level before any subcommand
  imports it, and keeps the user's own."""
  environment = dict(os.environ)  # A copy: what main sets goes away after.
  environment.pop('TF_CPP_MIN_LOG_LEVEL', None)
  if chosen is not None:
    environment['TF_CPP_MIN_LOG_LEVEL'] = chosen
  monkeypatch.setattr(os, 'environ', environment)
  status = cli.main([
      'build-classic', '--manual_dir', str(tmp_path / 'typo'),
      '--output_dir', str(tmp_path / 'out'),
  ])
  assert status == 1
  assert capsys.readouterr().err == (
      f'imagenet2012-local build-classic: error: The manual dir {tmp_path / "typo"}'
      ' does not exist.\nPass the folder that holds ILSVRC2012_img_train.tar,'
      ' ILSVRC2012_img_val.tar, ILSVRC2012_img_test.tar (any of them) as'
      ' --manual_dir (in Python: tfds.download.DownloadConfig(manual_dir=...)).\n'
  )
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == level
