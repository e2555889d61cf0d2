"""Archive indexes are remembered between builds of the same archive files."""

from __future__ import annotations

import os

import numpy as np

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import index_cache
from tests.helpers import DUMMY_DIR, TRAIN_TAR, build, manual_dir_with, read_split


def _columns(index):
  return [index.names, index.offsets, index.sizes, index.class_ids]


def test_a_remembered_index_equals_a_fresh_one(tmp_path):
  path = manual_dir_with(tmp_path, TRAIN_TAR) / TRAIN_TAR
  assert index_cache.load(path) is None
  fresh = archive_index.index_archive(path, archive_facts.TRAIN)
  index_cache.save(path, fresh, {'x/.DS_Store': 'a hidden file'})
  remembered, skipped = index_cache.load(path)
  for a, b in zip(_columns(remembered), _columns(fresh)):
    np.testing.assert_array_equal(a, b)
  assert remembered.class_dirs == fresh.class_dirs
  assert skipped == {'x/.DS_Store': 'a hidden file'}


def test_a_changed_archive_is_indexed_again(tmp_path):
  path = manual_dir_with(tmp_path, TRAIN_TAR) / TRAIN_TAR
  index_cache.save(path, archive_index.index_archive(path, archive_facts.TRAIN), {})
  stat = os.stat(path)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
  assert index_cache.load(path) is None


def test_a_rebuild_reads_no_tar_header(tmp_path, monkeypatch, dummy_build):
  build(DUMMY_DIR, tmp_path / 'first')

  def refuse(*args, **kwargs):
    raise AssertionError('indexed again')

  monkeypatch.setattr(archive_index, 'index_archive', refuse)
  build(DUMMY_DIR, tmp_path / 'second')
  for split in ('train', 'validation', 'test'):
    assert read_split(tmp_path / 'second', split) == read_split(dummy_build, split)
