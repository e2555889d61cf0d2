"""The plan (which image goes to which shard), the build paths that write it,
and the pinned bytes of the dummy build."""

from __future__ import annotations

import collections
import hashlib
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_index
from imagenet2012_local.engine import plan
from imagenet2012_local import settings
from imagenet2012_local.layouts import tfds_layout
from imagenet2012_local.gate import verification
from imagenet2012_local.sources import tar_source
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


@pytest.mark.parametrize('workers', ['1', '3'])
def test_builds_are_byte_identical_with_any_number_of_workers(
    dummy_build, tmp_path, monkeypatch, workers
):
  monkeypatch.setenv(settings.WORKERS_ENV_VAR, workers)
  build(DUMMY_DIR, tmp_path)
  files = _files(tmp_path)
  assert files == _files(dummy_build)
  assert {'dataset_info.json', 'metadata.json'} <= files.keys()


# The SHA-256 of each published file of the dummy build. The read strategy
# (threads, order of requests) must never change an output byte: a change here
# must be a deliberate change of the dataset.
PINNED_DUMMY_BUILD = {
    'imagenet2012_local-train.tfrecord-00000-of-00001': 'ad9b3581a0f8f68487f94daf00a3c387b09c68399c59e3610bb0aecd5c89b00c',
    'imagenet2012_local-validation.tfrecord-00000-of-00001': 'e479dffa908dfce737f15d90e23f80ef9600186b7c71e108e783a5b14fa649dd',
    'imagenet2012_local-test.tfrecord-00000-of-00001': '8619e35d86d67de34f352b259fc4c1c4756768433d73f59d0f3ae9c36b7d5bcf',
    # metadata.json changed deliberately: class_words holds the 1,000 classes
    # only, not every synset of the devkit (issue 21).
    'metadata.json': '522bf48f69b93716aeb8e422203cf167a6cdee2cf96e75302d2f57142e42a522',
}


def test_dummy_build_bytes_are_pinned(dummy_build):
  files = _files(dummy_build)
  assert {
      name: hashlib.sha256(files[name]).hexdigest() for name in PINNED_DUMMY_BUILD
  } == PINNED_DUMMY_BUILD


def _fake_index(classes: int, per_class: int) -> archive_index.ArchiveIndex:
  """An ImageNet-shaped index (~110 KB images); no file behind it."""
  wnids = tuple(f'n{c:08d}' for c in range(classes))
  return archive_index.ArchiveIndex.concatenate(
      [
          archive_index.ArchiveIndex.of_tar(
              [(f'{wnid}_{i}.JPEG', 0, 110_000) for i in range(per_class)], c
          )
          for c, wnid in enumerate(wnids)
      ],
      wnids,
  )


def _plan(index):
  source = types.SimpleNamespace(
      split='train',
      reader=lambda: tar_source.TarImages('/nowhere/train.tar', 16),
      labels=lambda ix: ix.class_ids,
  )
  return tfds_layout.plan_split(source, index)


def _names(task):
  return [name.decode() for name in task.images.names]


def test_the_plan_is_pinned():
  """The order of a 35,000-image split (the same as before the index became
  columns), pinned like the dummy build's bytes."""
  tasks = _plan(_fake_index(classes=100, per_class=350))
  digest = hashlib.sha256()
  for task in tasks:
    digest.update(f'{task.index}-of-{task.num_shards}\n'.encode())
    digest.update(b''.join(name.encode() + b' ' for name in _names(task)))
  assert len(tasks) == 32
  assert digest.hexdigest() == (
      '2e1b075422557f9e761d0c7196e88c5bd55b29d580d5c6bf1ba7418ab44c6c8a'
  )


def test_every_train_shard_mixes_classes():
  tasks = _plan(_fake_index(classes=100, per_class=350))
  assert len(tasks) > 8
  sizes = [len(t.images) for t in tasks]
  assert max(sizes) - min(sizes) <= 1
  for task in tasks:
    assert len(set(task.images.class_ids)) >= 90
    np.testing.assert_array_equal(task.labels, task.images.class_ids)


def test_the_plan_does_not_depend_on_the_tar_member_order():
  index = _fake_index(classes=10, per_class=30)
  forward = _plan(index)
  backward = _plan(index.take(slice(None, None, -1)))
  assert [_names(t) for t in forward] == [_names(t) for t in backward]
  counts = collections.Counter(forward[0].images.class_ids)
  assert len(counts) > 1  # Shuffled, not in name order.


def test_duplicate_file_names_are_an_error():
  index = _fake_index(classes=2, per_class=3)
  index = index.take(np.array([*range(len(index)), 1]))
  with pytest.raises(plan.DuplicateImagesError, match='n00000000_1.JPEG'):
    _plan(index)
