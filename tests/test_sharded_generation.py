"""The fast path (shards written directly) against TFDS's standard path, and its plan."""

from __future__ import annotations

import collections

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local import archives
from imagenet2012_local import sharded_generation
from imagenet2012_local import verification
from tests.helpers import DUMMY_DIR, VAL_TAR, build, manual_dir_with, read_split

SPLITS = ['train', 'validation', 'test']


def _version_dir(data_dir):
  return next(data_dir.glob('imagenet2012_local/*'))


def _files(data_dir) -> dict[str, bytes]:
  """Every file of the published version, but the build log (it holds times)."""
  return {
      f.name: f.read_bytes()
      for f in _version_dir(data_dir).iterdir()
      if f.name != 'build_stats.json'
  }


def _standard_build(manual_dir, data_dir):
  """TFDS's own generator path: `max_examples_per_split` selects it."""
  builder = tfds.builder('imagenet2012_local', data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, max_examples_per_split=10**6
      )
  )
  return builder


def test_fast_path_is_used_by_default(dummy_build):
  stats = (_version_dir(dummy_build) / 'build_stats.json').read_text()
  assert '"path": "sharded"' in stats


@pytest.mark.parametrize('split', SPLITS)
def test_standard_path_gives_the_same_examples(dummy_build, tmp_path, split):
  _standard_build(DUMMY_DIR, tmp_path)
  assert read_split(tmp_path, split) == read_split(dummy_build, split)
  standard = tfds.builder('imagenet2012_local', data_dir=tmp_path).info.metadata
  fast = tfds.builder('imagenet2012_local', data_dir=dummy_build).info.metadata
  assert standard['fixed_images'] == fast['fixed_images']


def test_standard_path_also_fails_on_a_wrong_md5(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = bytearray((manual / VAL_TAR).read_bytes())
  data[len(data) // 2] ^= 0xFF
  (manual / VAL_TAR).write_bytes(bytes(data))
  with pytest.raises(verification.ChecksumError):
    _standard_build(manual, tmp_path / 'data')


def test_two_builds_are_byte_identical(dummy_build, tmp_path):
  build(DUMMY_DIR, tmp_path)
  files = _files(tmp_path)
  assert files == _files(dummy_build)
  assert {'dataset_info.json', 'metadata.json'} <= files.keys()


def _fake_members(classes: int, per_class: int) -> list[archives.Member]:
  """ImageNet-shaped index entries (~110 KB images); no file behind them."""
  return [
      archives.Member(f'n{c:08d}_{i}.JPEG', f'n{c:08d}', offset=0, size=110_000)
      for c in range(classes)
      for i in range(per_class)
  ]


def _plan(members):
  template = tfds.core.naming.ShardedFileTemplate(
      data_dir=tfds.core.Path('/nowhere'),
      dataset_name='imagenet2012_local',
      filetype_suffix='tfrecord',
  )
  return sharded_generation.plan_split(
      'train', '/nowhere/train.tar', members, lambda m: m.class_dir, template
  )


def test_every_train_shard_mixes_classes():
  tasks = _plan(_fake_members(classes=100, per_class=350))
  assert len(tasks) > 8
  sizes = [len(t.members) for t in tasks]
  assert max(sizes) - min(sizes) <= 1
  for task in tasks:
    assert len({m.class_dir for m in task.members}) >= 90
    assert task.labels == [m.class_dir for m in task.members]


def test_the_plan_does_not_depend_on_the_tar_member_order():
  members = _fake_members(classes=10, per_class=30)
  forward = _plan(members)
  backward = _plan(list(reversed(members)))
  assert [t.members for t in forward] == [t.members for t in backward]
  counts = collections.Counter(m.class_dir for m in forward[0].members)
  assert len(counts) > 1  # Shuffled, not in name order.


def test_duplicate_file_names_are_an_error():
  members = _fake_members(classes=2, per_class=3)
  members.append(members[1])
  with pytest.raises(sharded_generation.DuplicateImagesError, match='n00000000_1.JPEG'):
    _plan(members)

