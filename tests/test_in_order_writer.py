"""Shards written from one read of each archive in order (`in_order_writer`):
the same bytes as reading images by offset, whatever the block size, for both
layouts, with fixes, bad images and an interrupted build."""

from __future__ import annotations

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.engine import block_writes
from imagenet2012_local.commands import classic_build
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.engine import in_order_progress
from imagenet2012_local.engine import in_order_reads
from imagenet2012_local.engine import in_order_writer
from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from tests.helpers import (
    DUMMY_DIR,
    NAME,
    VAL_TAR,
    build,
    count_archive_reads,
    failed_build,
    manual_dir_with,
    metadata,
    read_split,
)


@pytest.fixture(autouse=True)
def _in_order(monkeypatch):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'in-order')


def _files(folder):
  return {
      str(p.relative_to(folder)): p.read_bytes()
      for p in folder.rglob('*')
      if p.is_file() and p.name not in ('build_stats.json',)
  }


def _shards(data_dir):
  return {
      name: data
      for name, data in _files(data_dir / NAME).items()
      if '.tfrecord' in name
  }


def _count_calls(monkeypatch) -> list[int]:
  calls = []
  write = in_order_writer.write_in_order
  monkeypatch.setattr(
      in_order_writer, 'write_in_order',
      lambda *args: (calls.append(1), write(*args))[1],
  )
  return calls


@pytest.mark.parametrize('block', [512, 4096, 1 << 20])
def test_the_same_shards_and_metadata_whatever_the_block(
    dummy_build, tmp_path, monkeypatch, block
):
  monkeypatch.setattr(block_writes, 'block_size', lambda folder: block)
  calls = _count_calls(monkeypatch)
  build(DUMMY_DIR, tmp_path)
  assert calls == [1]
  assert _shards(tmp_path) == _shards(dummy_build)
  # Fixed images (CMYK, PNG) are found and recorded as by offset.
  assert metadata(tmp_path)['fixed_images'] == metadata(dummy_build)['fixed_images']
  assert metadata(tmp_path)['fixed_images']['train']
  kept = list(tmp_path.glob(f'{NAME}/*{resume.FOLDER_SUFFIX}'))
  assert not kept  # Edge files and partial shards are gone with it.


def test_the_classic_layout_is_byte_identical(tmp_path, monkeypatch):
  calls = _count_calls(monkeypatch)
  classic_build.build(DUMMY_DIR, tmp_path / 'in_order')
  assert calls == [1]
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'by-offset')
  classic_build.build(DUMMY_DIR, tmp_path / 'by_offset')
  assert calls == [1]
  assert _files(tmp_path / 'in_order') == _files(tmp_path / 'by_offset')


def test_dali_indexes_are_written_by_offset(tmp_path, monkeypatch):
  calls = _count_calls(monkeypatch)
  classic_build.build(DUMMY_DIR, tmp_path / 'out', dali_index=True)
  assert calls == []
  assert list((tmp_path / 'out').glob('dali_idx/*.idx'))


def _manual_dir_with_an_undecodable_image(tmp_path):
  """The dummy validation archive, its first image's bytes made no image."""
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = bytearray((manual / VAL_TAR).read_bytes())
  start = 512  # The first member's data follows its header.
  data[start : start + 64] = b'not an image, ' * 4 + b'not a ni'
  (manual / VAL_TAR).write_bytes(bytes(data))
  return manual


def test_an_undecodable_image_fails_naming_it(tmp_path):
  manual = _manual_dir_with_an_undecodable_image(tmp_path)
  what, _ = failed_build(
      manual, tmp_path / 'data', image_fixes.UndecodableImageError,
      verify_checksums=False,
  )
  assert 'ILSVRC2012_val_' in what and str(manual / VAL_TAR) in what


def test_an_undecodable_image_is_skipped_and_listed(dummy_build, tmp_path):
  manual = _manual_dir_with_an_undecodable_image(tmp_path)
  build(manual, tmp_path / 'data', verify_checksums=False, skip_bad_images=True)
  skipped = metadata(tmp_path / 'data')['skipped_images']['validation']
  assert len(skipped) == 1
  ours = read_split(tmp_path / 'data', 'validation')
  theirs = read_split(dummy_build, 'validation')
  assert ours == {k: v for k, v in theirs.items() if k not in skipped}


def _interrupt_after(monkeypatch, places: int) -> list[int]:
  """Makes the build stop (as on a kill) at its `places`-th record placed,
  once; returns the list that counts the records placed."""
  place = block_writes.BlockWrites.place
  placed = []

  stopped = []

  def count_and_stop(self, *args):
    placed.append(1)
    if len(placed) == places and not stopped:
      stopped.append(1)
      raise KeyboardInterrupt
    place(self, *args)

  monkeypatch.setattr(block_writes.BlockWrites, 'place', count_and_stop)
  return placed


@pytest.mark.parametrize('checkpoint_bytes', [1, 1 << 30], ids=['each', 'none'])
def test_an_interrupted_build_goes_on_from_its_checkpoint(
    dummy_build, tmp_path, monkeypatch, checkpoint_bytes
):
  monkeypatch.setattr(in_order_progress, 'CHECKPOINT_BYTES', checkpoint_bytes)
  placed = _interrupt_after(monkeypatch, 40)
  with pytest.raises(KeyboardInterrupt):
    build(DUMMY_DIR, tmp_path)
  assert not tfds.builder(NAME, data_dir=tmp_path).is_prepared()
  placed.clear()
  build(DUMMY_DIR, tmp_path)
  total = len(placed)
  placed.clear()
  build(DUMMY_DIR, tmp_path / 'again')
  # Each record: once in all with a checkpoint after each, twice without.
  assert total == (len(placed) - 39 if checkpoint_bytes == 1 else len(placed))
  assert _shards(tmp_path) == _shards(dummy_build)
  assert metadata(tmp_path)['fixed_images'] == metadata(dummy_build)['fixed_images']
  assert not list(tmp_path.rglob('edges-*.bin'))
  assert not list(tmp_path.rglob('*.in-order'))


@pytest.mark.parametrize('garbage', [b'', b'{"key": 3}', b'\xff' * 9])
def test_a_damaged_checkpoint_is_ignored(dummy_build, tmp_path, monkeypatch, garbage, caplog):
  monkeypatch.setattr(in_order_progress, 'CHECKPOINT_BYTES', 1)
  _interrupt_after(monkeypatch, 40)
  with pytest.raises(KeyboardInterrupt):
    build(DUMMY_DIR, tmp_path)
  (record,) = tmp_path.rglob('in-order.json')
  record.write_bytes(garbage)
  build(DUMMY_DIR, tmp_path)
  assert _shards(tmp_path) == _shards(dummy_build)
  assert any('in-order.json' in r.getMessage() for r in caplog.records)


def test_a_rebuild_reads_each_archive_once(dummy_build, tmp_path, monkeypatch):
  build(DUMMY_DIR, tmp_path / 'first')
  calls = _count_calls(monkeypatch)
  read = count_archive_reads(monkeypatch)
  build(DUMMY_DIR, tmp_path / 'second')
  # The index (with what each image's content gave) and the verified
  # digests are remembered: the images are all that is read.
  assert calls == [1] and len(read) == 3
  assert _shards(tmp_path / 'second') == _shards(dummy_build)


@pytest.mark.parametrize('segment', [1 << 20, 8 << 10])
def test_segments_read_last_first_give_the_same_shards(
    dummy_build, tmp_path, monkeypatch, segment
):
  """The images are read a segment at a time, the last first (so what the
  page cache kept of the index's read is read before it is evicted); with
  many segments, and a stop and a checkpoint midway, the same bytes."""
  monkeypatch.setattr(in_order_reads, '_SEGMENT_BYTES', segment)
  monkeypatch.setattr(in_order_progress, 'CHECKPOINT_BYTES', 1)
  read = count_archive_reads(monkeypatch)
  _interrupt_after(monkeypatch, 30)
  with pytest.raises(KeyboardInterrupt):
    build(DUMMY_DIR, tmp_path)
  build(DUMMY_DIR, tmp_path)
  assert _shards(tmp_path) == _shards(dummy_build)
  if segment == 8 << 10:  # The train archive (110 KB) in many segments.
    assert read.count('ILSVRC2012_img_train.tar') > 4


def test_the_real_labels_variant_in_order_is_byte_identical(tmp_path, monkeypatch):
  """A layout with other features sizes its own records (`features`)."""
  calls = _count_calls(monkeypatch)
  build(DUMMY_DIR, tmp_path / 'in_order', name='imagenet2012_local_real')
  assert calls == [1]
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'by-offset')
  build(DUMMY_DIR, tmp_path / 'by_offset', name='imagenet2012_local_real')
  in_order, by_offset = (
      {
          name: data
          for name, data in _files(tmp_path / folder / 'imagenet2012_local_real').items()
          if '.tfrecord' in name
      }
      for folder in ('in_order', 'by_offset')
  )
  assert in_order and in_order == by_offset


@pytest.mark.parametrize('lost', ['edges-00.bin', '.in-order'])
def test_a_checkpoint_whose_files_are_gone_is_ignored(
    dummy_build, tmp_path, monkeypatch, lost, caplog
):
  monkeypatch.setattr(in_order_progress, 'CHECKPOINT_BYTES', 1)
  _interrupt_after(monkeypatch, 40)
  with pytest.raises(KeyboardInterrupt):
    build(DUMMY_DIR, tmp_path)
  (gone, *_) = sorted(tmp_path.rglob(f'*{lost}'))
  gone.unlink()
  build(DUMMY_DIR, tmp_path)
  assert _shards(tmp_path) == _shards(dummy_build)
  assert any(
      'in-order.json' in r.getMessage() and 'gone' in r.getMessage()
      for r in caplog.records
  )
