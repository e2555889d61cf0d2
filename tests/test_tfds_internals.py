"""What `tfds_internals` relies on in TensorFlow Datasets' private API.

Each test pins one assumption, so a TFDS upgrade that breaks it fails here,
in one place, instead of somewhere in a build.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import file_utils

import imagenet2012_local  # noqa: F401  (registers the builder)
from imagenet2012_local import tfds_internals
from tests.helpers import DUMMY_DIR, build


def test_shard_counts_follow_tfds_policy():
  # Full ImageNet's train and validation archives, and a tiny split.
  assert tfds_internals.number_of_shards(147_897_477_120, 1_281_167) == 1024
  assert tfds_internals.number_of_shards(6_744_924_160, 50_000) == 64
  assert tfds_internals.number_of_shards(100_000, 10) == 1


def test_shard_bounds_cover_every_example_once():
  assert tfds_internals.shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]


def test_shard_paths_are_named_as_tfds_reads_them(tmp_path):
  builder = tfds.builder('imagenet2012_local', data_dir=tmp_path)
  template = tfds_internals.filename_template(builder, 'train')
  path = tfds_internals.shard_path(template, 2, 1024)
  assert os.path.basename(path) == 'imagenet2012_local-train.tfrecord-00002-of-01024'
  assert tfds_internals.example_writer(builder).file_format == tfds.core.FileFormat.TFRECORD


def test_split_info_lists_the_shards(tmp_path):
  builder = tfds.builder('imagenet2012_local', data_dir=tmp_path)
  info = tfds_internals.split_info(builder, 'validation', [3, 2], 1234)
  assert (info.name, info.num_examples, info.num_bytes) == ('validation', 5, 1234)
  assert [os.path.basename(f) for f in info.filenames] == [
      'imagenet2012_local-validation.tfrecord-00000-of-00002',
      'imagenet2012_local-validation.tfrecord-00001-of-00002',
  ]


def test_the_manual_dir_as_given_is_kept(tmp_path):
  manager = tfds.download.DownloadManager(
      download_dir=tmp_path, manual_dir=tmp_path / 'nowhere'
  )
  assert tfds_internals.manual_dir_as_given(manager) == os.fspath(tmp_path / 'nowhere')


def test_progress_bars_wrap_iterables():
  assert list(tfds_internals.progress_bar(iter([1, 2]), total=2, desc='x')) == [1, 2]


def test_tfds_builds_into_the_incomplete_folders_we_clean_up(tmp_path):
  version_dir = tmp_path / 'imagenet2012_local' / '5.1.0'
  temporary = file_utils._get_incomplete_dir(os.fspath(version_dir))  # pylint: disable=protected-access
  os.makedirs(temporary)
  assert tfds_internals.stale_incomplete_dirs(tfds.core.Path(version_dir)) == [
      tfds.core.Path(temporary.rstrip('/'))
  ]


def test_the_hook_after_publishing_runs(tmp_path, monkeypatch):
  """The builder removes kept shards in `_post_download_and_prepare_hook`."""
  calls = []
  hook = tfds.core.DatasetBuilder._post_download_and_prepare_hook  # pylint: disable=protected-access
  monkeypatch.setattr(
      tfds.core.DatasetBuilder,
      '_post_download_and_prepare_hook',
      lambda self: calls.append(self.data_dir) or hook(self),
  )
  build(DUMMY_DIR, tmp_path)
  assert calls == [os.fspath(tmp_path / 'imagenet2012_local' / '5.1.0')]
