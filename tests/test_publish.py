"""Tests of the atomic publish of an output folder."""

from __future__ import annotations

import pytest

from imagenet2012_local.engine import publish
from tests.helpers import two_lines


def test_staging_folder_is_renamed_on_success(tmp_path):
  output_dir = tmp_path / 'parent' / 'out'
  with publish.staged(output_dir, overwrite=False) as staging:
    assert staging.parent == output_dir.parent
    assert staging.name.startswith('out.incomplete-')
    assert list(staging.iterdir()) == []
    (staging / 'file').write_text('new')
    assert not output_dir.exists()  # Nothing looks complete before the end.
  assert [p.name for p in output_dir.iterdir()] == ['file']
  assert list(output_dir.parent.iterdir()) == [output_dir]


def test_failure_leaves_nothing(tmp_path):
  output_dir = tmp_path / 'out'
  with pytest.raises(KeyboardInterrupt):
    with publish.staged(output_dir, overwrite=False) as staging:
      (staging / 'file').write_text('half')
      raise KeyboardInterrupt
  assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_only_once_complete(tmp_path):
  output_dir = tmp_path / 'out'
  output_dir.mkdir()
  (output_dir / 'old').write_text('old')
  with publish.staged(output_dir, overwrite=True) as staging:
    (staging / 'new').write_text('new')
    assert [p.name for p in output_dir.iterdir()] == ['old']
  assert [p.name for p in output_dir.iterdir()] == ['new']
  assert list(tmp_path.iterdir()) == [output_dir]  # No `.replaced-` left.


def test_failed_overwrite_keeps_the_old_folder(tmp_path):
  output_dir = tmp_path / 'out'
  output_dir.mkdir()
  (output_dir / 'old').write_text('old')
  with pytest.raises(KeyboardInterrupt):
    with publish.staged(output_dir, overwrite=True) as staging:
      (staging / 'new').write_text('new')
      raise KeyboardInterrupt
  assert list(tmp_path.iterdir()) == [output_dir]
  assert [p.name for p in output_dir.iterdir()] == ['old']


def test_output_appearing_meanwhile_is_kept(tmp_path):
  output_dir = tmp_path / 'out'
  with pytest.raises(publish.OutputExistsError, match='appeared') as raised:
    with publish.staged(output_dir, overwrite=False) as staging:
      (staging / 'new').write_text('new')
      output_dir.mkdir()
      (output_dir / 'theirs').write_text('theirs')
  assert 'run again' in two_lines(raised.value)[1]
  assert list(tmp_path.iterdir()) == [output_dir]
  assert [p.name for p in output_dir.iterdir()] == ['theirs']


def test_check_free(tmp_path):
  output_dir = tmp_path / 'out'
  publish.check_free(output_dir, overwrite=False)
  output_dir.mkdir()
  publish.check_free(output_dir, overwrite=True)
  with pytest.raises(publish.OutputExistsError, match='pass --overwrite') as raised:
    publish.check_free(output_dir, overwrite=False)
  assert 'choose another output folder' in two_lines(raised.value)[1]
