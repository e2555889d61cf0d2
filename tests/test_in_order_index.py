"""The index from one read in order (`in_order_index`), and the disk probe
that chooses it (`disk_probe`): the same index, the same digest, the same
shards as indexing by offset."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import direct_reads
from imagenet2012_local.engine import disk_probe
from imagenet2012_local.sources import in_order_index
from imagenet2012_local import settings
from imagenet2012_local.sources import tar_reader
from imagenet2012_local.gate import verification
from tests.helpers import (
    DUMMY_DIR,
    TEST_TAR,
    TRAIN_TAR,
    VAL_TAR,
    build,
    count_archive_reads,
    failed_build,
    manual_dir_with,
    metadata,
)

_ARCHIVES = {TRAIN_TAR: archive_facts.TRAIN, VAL_TAR: archive_facts.VALIDATION,
             TEST_TAR: archive_facts.TEST}


def _in_order(path, archive, piece_size=None):
  """(index, skipped, sha256 of every byte handed on, in order)."""
  digest = hashlib.sha256()
  skipped = {}
  if piece_size is None:
    pieces = direct_reads.pieces(path)
  else:  # Small pieces: headers and seeks across piece boundaries.
    data = path.read_bytes()
    pieces = iter([data[i : i + piece_size] for i in range(0, len(data), piece_size)])
  index = in_order_index.index_in_order(
      path, archive, pieces, lambda piece: digest.update(piece), skipped
  )
  return index, skipped, digest.hexdigest()


def _columns(index: archive_index.ArchiveIndex):
  return (index.names.tolist(), index.offsets.tolist(), index.sizes.tolist(),
          index.class_ids.tolist(), index.class_dirs)


@pytest.mark.parametrize('name', [TRAIN_TAR, VAL_TAR, TEST_TAR])
@pytest.mark.parametrize('piece_size', [None, 512, 1536, 7 * 512 + 3])
def test_the_same_index_and_every_byte_in_order(name, piece_size):
  path = DUMMY_DIR / name
  index, skipped, digest = _in_order(path, _ARCHIVES[name], piece_size)
  by_offset = archive_index.index_archive(path, _ARCHIVES[name])
  assert _columns(index) == _columns(by_offset)
  assert len(index) > 0 and skipped == {}
  assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode='w', format=tarfile.USTAR_FORMAT) as tar:
    for info, data in members:
      tar.addfile(info, io.BytesIO(data) if data else None)
  return out.getvalue()


def _member(name: str, data: bytes = b'', kind=tarfile.REGTYPE) -> tuple[tarfile.TarInfo, bytes]:
  info = tarfile.TarInfo(name)
  info.type = kind
  info.size = len(data) if kind == tarfile.REGTYPE else 0
  return info, data


def test_a_tar_that_is_not_plain_is_read_to_the_end_then_refused(tmp_path):
  data = _tar([
      _member('ILSVRC2012_val_00000001.JPEG', b'x' * 700),
      _member('folder', kind=tarfile.DIRTYPE),
      _member('ILSVRC2012_val_00000002.JPEG', b'y' * 1300),
  ])
  path = tmp_path / VAL_TAR
  path.write_bytes(data)
  digest = hashlib.sha256()
  with pytest.raises(in_order_index.NotInOrder):
    in_order_index.index_in_order(
        path, archive_facts.VALIDATION, iter([data[:1024], data[1024:]]),
        digest.update, {},
    )
  assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_cut_archive_fails_as_it_does_by_offset(tmp_path, monkeypatch):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'in-order')
  data = (DUMMY_DIR / VAL_TAR).read_bytes()
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(data[: len(data) // 2 // 512 * 512])
  what, _ = failed_build(
      manual, tmp_path / 'data', tar_reader.ArchiveError, verify_checksums=False
  )
  assert str(manual / VAL_TAR) in what and 'cut off' in what


def _shards(data_dir):
  return {
      p.name: p.read_bytes()
      for p in data_dir.glob('imagenet2012_local/*/*')
      if p.is_file() and '.tfrecord' in p.name
  }


def test_a_build_read_in_order_is_byte_identical(dummy_build, tmp_path, monkeypatch):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'in-order')
  read = count_archive_reads(monkeypatch)
  build(DUMMY_DIR, tmp_path)
  assert _shards(tmp_path) == _shards(dummy_build)
  assert {a['status'] for a in metadata(tmp_path)['archives'].values()} == {'verified'}
  # Two reads of each archive, in order: the index and the digest came from
  # the first, the images from the second.
  assert sorted(read) == sorted(
      [TRAIN_TAR, VAL_TAR, TEST_TAR] * 2
  )


def test_a_wrong_digest_fails_before_any_shard_is_written(tmp_path, monkeypatch):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'in-order')
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = bytearray((manual / VAL_TAR).read_bytes())
  data[len(data) // 2] ^= 0xFF  # Inside an image: the tar still reads.
  (manual / VAL_TAR).write_bytes(bytes(data))
  what, _ = failed_build(manual, tmp_path / 'data', verification.ChecksumError)
  assert str(manual / VAL_TAR) in what
  assert not list(tmp_path.glob('data/**/*.tfrecord*'))


@pytest.mark.parametrize('choice', ['by-offset', 'in-order'])
def test_the_setting_decides_unmeasured(tmp_path, monkeypatch, choice):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, choice)
  monkeypatch.setattr(disk_probe, 'measure', lambda *_: pytest.fail('measured'))
  read_order = settings.read().read_order
  for hashing in (True, False):
    assert disk_probe.index_in_order(tmp_path / 'any', 10**12, hashing, read_order) == (
        choice == 'in-order'
    )
  assert disk_probe.write_in_order(tmp_path / 'any', 10**12, read_order) == (
      choice == 'in-order'
  )


def test_a_wrong_setting_is_two_lines(monkeypatch):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, 'sideways')
  with pytest.raises(settings.SettingError) as raised:
    settings.read_order()
  what, fix = str(raised.value).splitlines()
  assert 'sideways' in what and 'in-order' in what and 'unset' in fix


def test_small_archives_are_indexed_by_offset_unmeasured(monkeypatch):
  monkeypatch.delenv(settings.READ_ORDER_ENV_VAR, raising=False)
  monkeypatch.setattr(disk_probe, 'measure', lambda *_: pytest.fail('measured'))
  assert not disk_probe.index_in_order(DUMMY_DIR / VAL_TAR, 31_232, hashing=True)
  assert not disk_probe.write_in_order(DUMMY_DIR / VAL_TAR, 31_232)


def test_the_probe_measures_a_real_file(tmp_path):
  path = tmp_path / 'big'
  path.write_bytes(np.random.default_rng(0).bytes(8 << 20))
  rates = disk_probe.measure(path, 8 << 20)
  if rates is None:
    pytest.skip(f'{tmp_path} refuses direct reads')
  assert min(rates.header_reads_per_s, rates.random_reads_per_s) > 0
  assert rates.sequential_bytes_per_s > 0


@pytest.mark.parametrize('rates, index_hashing, index_not_hashing, write', [
    # A standard cloud disk: the reads by offset cost the most.
    (disk_probe.DiskRates(375, 375, 60e6), True, True, True),
    # An SSD cloud volume, slower than the CPUs: the index from the digest's
    # read; without a digest, one read by offset costs less than two in order.
    (disk_probe.DiskRates(3_000, 3_000, 125e6), True, False, False),
    # This VM's own disk (headers read ascending far faster than at random):
    # by offset, the digest beside the writing, the writing on every core.
    (disk_probe.DiskRates(30_000, 6_000, 1.4e9), False, False, False),
])
def test_a_small_archive_follows_its_measured_disk(
    monkeypatch, rates, index_hashing, index_not_hashing, write
):
  monkeypatch.delenv(settings.READ_ORDER_ENV_VAR, raising=False)
  device = (DUMMY_DIR / VAL_TAR).stat().st_dev
  monkeypatch.setitem(disk_probe._MEASURED, device, rates)
  path, size = DUMMY_DIR / VAL_TAR, 31_232
  assert disk_probe.index_in_order(path, size, hashing=True) == index_hashing
  assert disk_probe.index_in_order(path, size, hashing=False) == index_not_hashing
  assert disk_probe.write_in_order(path, size) == write
