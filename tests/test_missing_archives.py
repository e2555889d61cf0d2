"""Which archives a build finds in the manual dir, and what it says when there are none."""

from __future__ import annotations

import pytest

from imagenet2012_local.imagenet2012_local_dataset_builder import Builder
from imagenet2012_local.imagenet2012_local_dataset_builder import MissingArchivesError
from tests.helpers import TEST_TAR, VAL_TAR, build, manual_dir_with, two_lines


def test_no_archives_in_the_manual_dir(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'notes.txt').write_text('not an archive')
  with pytest.raises(MissingArchivesError) as error:
    build(manual, tmp_path / 'data')
  what, fix = two_lines(error.value)
  assert f'No ImageNet 2012 archive in {manual}' in what and VAL_TAR in what
  assert 'image-net.org' in fix and '--manual_dir' in fix


@pytest.mark.parametrize('exists', [False, True])
def test_a_manual_dir_that_is_missing_or_empty(tmp_path, exists):
  """TFDS checks the folder first; its page of instructions stays the cause."""
  manual = tmp_path / 'typo'
  if exists:
    manual.mkdir()
  with pytest.raises(MissingArchivesError) as error:
    build(manual, tmp_path / 'data')
  what, fix = two_lines(error.value)
  assert f'{manual} does not exist or is empty' in what
  assert '--manual_dir' in fix
  tfds_message = str(error.value.__cause__)
  assert 'does not exist or is empty' in tfds_message
  assert 'ILSVRC2012_img_train.tar  (138 GiB, train)' in tfds_message
  assert Builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split('\n')[0].strip() in tfds_message


def test_any_subset_of_archives_builds_those_splits(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR, TEST_TAR)
  builder = build(manual, tmp_path / 'data')
  assert set(builder.info.splits) == {'validation', 'test'}
