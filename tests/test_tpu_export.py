"""Tests of `imagenet2012-local export-tpu` on the dummy build."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from imagenet2012_local.layouts import classic_layout
from imagenet2012_local.commands import cli
from imagenet2012_local.engine import external_sort
from imagenet2012_local.sources import labels
from tests.helpers import read_split

# What the TPU / Intel / MLPerf ResNet pipelines parse; the bbox keys are
# VarLen there, so records without them must parse. The file name finds the
# stored example.
PIPELINE_SPEC = {
    **classic_layout.pipeline_parse_spec(),
    'image/filename': tf.io.FixedLenFeature((), tf.string, ''),
}
# Dummy data: 26 train, 10 validation and 5 test images; these leave no
# shard empty.
SHARDS = ['--train_shards', '4', '--validation_shards', '2', '--test_shards', '2']


def export(data_dir: Path, output_dir: Path, *flags: str) -> int:
  """Runs `imagenet2012-local export-tpu` with these flags; its exit status."""
  return cli.main([
      'export-tpu', '--data_dir', str(data_dir), '--output_dir', str(output_dir),
      *flags,
  ])


def shard_names(split: str, num_shards: int) -> list[str]:
  return [f'{split}-{k:05d}-of-{num_shards:05d}' for k in range(num_shards)]


def records(output_dir: Path, split: str) -> list[bytes]:
  """The serialized records of a split, in shard order."""
  return [r for p in sorted(output_dir.glob(f'{split}-*')) for r in file_records(p)]


def file_records(path: Path) -> list[bytes]:
  return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def parsed(record: bytes) -> dict[str, object]:
  example = tf.train.Example.FromString(record).features.feature
  return {
      key: (f.bytes_list.value or f.int64_list.value)[0]
      for key, f in example.items()
  }


def file_names(output_dir: Path, split: str) -> list[str]:
  return [parsed(r)['image/filename'].decode() for r in records(output_dir, split)]


@pytest.fixture(scope='module')
def exported(dummy_build, tmp_path_factory) -> Path:
  """All three splits exported with small shard counts and DALI indexes."""
  output_dir = tmp_path_factory.mktemp('export') / 'tpu'
  flags = ['--splits', 'train,validation,test', '--dali_index', *SHARDS]
  assert export(dummy_build, output_dir, *flags) == 0
  return output_dir


def test_file_names(exported):
  expected = (
      shard_names('train', 4) + shard_names('validation', 2) + shard_names('test', 2)
  )
  assert sorted(p.name for p in exported.iterdir()) == sorted(
      expected + [classic_layout.DALI_INDEX_DIR]
  )
  assert sorted(p.name for p in (exported / 'dali_idx').iterdir()) == sorted(
      f'{name}.idx' for name in expected
  )
  assert all((exported / name).stat().st_size > 0 for name in expected)


def test_default_shard_counts_and_splits(dummy_build, tmp_path):
  assert export(dummy_build, tmp_path / 'tpu') == 0
  # The pipelines' names, whatever the dataset size; with 26 and 10 images most
  # files are empty (and those are valid TFRecord files).
  names = shard_names('train', 1024) + shard_names('validation', 128)
  assert sorted(p.name for p in (tmp_path / 'tpu').iterdir()) == sorted(names)
  counts = [len(file_records(tmp_path / 'tpu' / n)) for n in names]
  assert counts[:1024] == [1] * 26 + [0] * 998
  assert counts[1024:] == [1] * 10 + [0] * 118


def test_shard_sizes_differ_by_at_most_one(exported):
  for split, shards, total in [('train', 4, 26), ('validation', 2, 10), ('test', 2, 5)]:
    counts = [len(file_records(exported / n)) for n in shard_names(split, shards)]
    assert sum(counts) == total
    assert max(counts) - min(counts) <= 1


def assert_records_hold_the_dataset(folder: Path, data_dir: Path, split: str) -> None:
  """The classic files of `split` in `folder` hold exactly the examples of the
  TFDS build in `data_dir`: bytes, label + 1, synset, file name, sizes, keys."""
  stored = read_split(data_dir, split)
  wnids = labels.class_names_file().read_text().split()
  seen = []
  for record in records(folder, split):
    example = tf.io.parse_single_example(record, PIPELINE_SPEC)
    values = parsed(record)
    file_name = example['image/filename'].numpy().decode()
    label, image = stored[file_name]
    assert example['image/encoded'].numpy() == image
    assert example['image/object/bbox/xmin'].values.shape == (0,)
    assert example['image/object/class/label'].values.shape == (0,)
    assert example['image/class/text'].numpy() == b''
    if split == 'test':
      assert (int(example['image/class/label']), values['image/class/synset']) == (-1, b'')
    else:
      assert int(example['image/class/label']) == label + 1
      assert values['image/class/synset'].decode() == wnids[label]
    height, width, _ = tf.io.decode_jpeg(image).shape
    assert (values['image/height'], values['image/width']) == (height, width)
    assert values['image/format'] == b'JPEG'
    assert values['image/colorspace'] == b'RGB'
    assert values['image/channels'] == 3
    seen.append(file_name)
  assert sorted(seen) == sorted(stored)  # Each image once.


@pytest.mark.parametrize('split', ['train', 'validation', 'test'])
def test_records_match_the_dataset(exported, dummy_build, split):
  assert_records_hold_the_dataset(exported, dummy_build, split)


def test_records_are_deterministic_protobuf_bytes(exported):
  # Reproducible files: the bytes protobuf writes with sorted map keys.
  for split in ['train', 'validation', 'test']:
    for record in records(exported, split):
      example = tf.train.Example.FromString(record)
      assert example.SerializeToString(deterministic=True) == record


@pytest.mark.parametrize('split', ['validation', 'test'])
def test_sorted_by_file_name_across_shards(exported, split):
  names = file_names(exported, split)
  assert names == sorted(names)


def test_sorting_through_many_buckets(exported, dummy_build, tmp_path, monkeypatch):
  monkeypatch.setattr(external_sort, '_BUCKET_BYTES', 1)  # One bucket per image.
  assert export(dummy_build, tmp_path / 'tpu', '--splits', 'validation', *SHARDS) == 0
  assert records(tmp_path / 'tpu', 'validation') == records(exported, 'validation')
  assert list(tmp_path.iterdir()) == [tmp_path / 'tpu']


def test_train_order_follows_the_seed(exported, dummy_build, tmp_path):
  for seed in ['0', '1']:
    flags = ['--splits', 'train', '--seed', seed, *SHARDS]
    assert export(dummy_build, tmp_path / seed, *flags) == 0
  # The fixture used the default seed, 0.
  assert records(tmp_path / '0', 'train') == records(exported, 'train')
  assert file_names(tmp_path / '1', 'train') != file_names(exported, 'train')
  assert sorted(file_names(tmp_path / '1', 'train')) == sorted(
      file_names(exported, 'train')
  )


def test_dali_indexes_point_at_records(exported):
  for index in (exported / classic_layout.DALI_INDEX_DIR).iterdir():
    data = (exported / index.stem).read_bytes()
    entries = [tuple(map(int, line.split())) for line in index.read_text().splitlines()]
    expected = file_records(exported / index.stem)
    assert len(entries) == len(expected)
    assert entries[0][0] == 0
    assert sum(size for _, size in entries) == len(data)
    for (offset, size), record in zip(entries, expected):
      (length,) = struct.unpack('<Q', data[offset : offset + 8])
      assert length == size - 16
      assert data[offset + 12 : offset + 12 + length] == record


def test_existing_output_dir_is_kept_without_overwrite(dummy_build, tmp_path, capsys):
  output_dir = tmp_path / 'tpu'
  output_dir.mkdir()
  (output_dir / 'mine').write_text('keep me')
  assert export(dummy_build, output_dir, *SHARDS) == 1
  assert 'exists' in capsys.readouterr().err
  assert [p.name for p in output_dir.iterdir()] == ['mine']

  assert export(dummy_build, output_dir, '--overwrite', *SHARDS) == 0
  assert sorted(p.name for p in output_dir.iterdir()) == sorted(
      shard_names('train', 4) + shard_names('validation', 2)
  )
  assert list(tmp_path.iterdir()) == [output_dir]


@pytest.mark.parametrize('existing', [False, True])
def test_interrupted_export_leaves_nothing(dummy_build, tmp_path, monkeypatch, existing):
  output_dir = tmp_path / 'tpu'
  if existing:
    output_dir.mkdir()
    (output_dir / 'mine').write_text('keep me')
  write_shard = classic_layout.write_shard
  calls = itertools.count()

  def failing_write_shard(*args, **kwargs):
    if next(calls) == 5:  # Halfway: train done, in the middle of validation.
      raise KeyboardInterrupt
    return write_shard(*args, **kwargs)

  monkeypatch.setattr(classic_layout, 'write_shard', failing_write_shard)
  with pytest.raises(KeyboardInterrupt):
    export(dummy_build, output_dir, '--overwrite', '--dali_index', *SHARDS)
  if existing:
    assert list(tmp_path.iterdir()) == [output_dir]
    assert [p.name for p in output_dir.iterdir()] == ['mine']
  else:
    assert list(tmp_path.iterdir()) == []


def test_missing_split_is_an_error(dummy_build, tmp_path, capsys):
  assert export(dummy_build, tmp_path / 'tpu', '--splits', 'train,bogus') == 1
  err = capsys.readouterr().err
  assert 'bogus' in err
  assert err.splitlines()[1] == 'Choose among train, validation, test.'
  assert list(tmp_path.iterdir()) == []


def test_array_record_build_is_an_error(dummy_build, tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(
      tfds.core.DatasetInfo,
      'file_format',
      property(lambda _: tfds.core.FileFormat.ARRAY_RECORD),
  )
  assert export(dummy_build, tmp_path / 'tpu') == 1
  err = capsys.readouterr().err
  assert 'TFRecord builds only' in err
  assert '--file_format tfrecord' in err.splitlines()[1]
  assert list(tmp_path.iterdir()) == []


def test_unprepared_data_dir_is_an_error(tmp_path, capsys):
  assert export(tmp_path / 'empty', tmp_path / 'tpu') == 1
  err = capsys.readouterr().err
  assert 'tfds build' in err
  assert err.splitlines()[1].startswith('Build it first with `tfds build')
  assert not (tmp_path / 'tpu').exists()
