"""State files kept between builds (the index cache, the verified archives,
kept-shard records) that fail to load are ignored with one line saying so,
and written again; the build goes on. Held-out damage: random bytes, cuts at
several points, valid files of the wrong shape."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import index_cache
from imagenet2012_local import paths
from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.gate import verification
from tests.helpers import VAL_TAR, build, manual_dir_with, metadata, read_split


def _flipped(data: bytes, at: int) -> bytes:
  return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


def _damaged(valid: bytes) -> dict[str, bytes]:
  """Ways a file of `valid` bytes is found damaged: cut, garbled, random."""
  rng = random.Random(len(valid))
  cuts = {f'cut-at-{n}': valid[:n] for n in (0, 1, len(valid) // 3, len(valid) - 1)}
  return {
      **cuts,
      'first-byte-flipped': _flipped(valid, 0),
      'random-bytes': rng.randbytes(len(valid)),
      'not-utf8': b'\xff\xfe' + valid,
  }


def _said_once(caplog, path: Path) -> str:
  """The one warning that names `path`; fails unless there is exactly one."""
  lines = [m for m in caplog.messages if str(path) in m]
  assert len(lines) == 1, caplog.messages
  assert lines[0].startswith(f'Ignoring {path} (')
  assert lines[0].endswith('); the build will write it again.')
  return lines[0]


# The index cache.


@pytest.fixture
def val_archive(tmp_path):
  return paths.absolute(manual_dir_with(tmp_path, VAL_TAR) / VAL_TAR)


def _cached_index(archive) -> Path:
  """Indexes `archive` into the cache; the cache file."""
  index_cache.save(archive, archive_index.index_archive(archive, archive_facts.VALIDATION), {})
  (path,) = Path(settings.cache_dir()).glob('index-*.npz')
  return path


def _npz(**columns) -> bytes:
  path = Path(settings.cache_dir()) / 'made.npz'
  with open(path, 'wb') as f:
    np.savez(f, **columns)
  return path.read_bytes()


def _wrong_shapes(cached: Path) -> dict[str, bytes]:
  """Valid .npz files with the archive's key but columns that do not fit."""
  with open(cached, 'rb') as f, np.load(f) as saved:
    good = dict(saved)
  n = len(good['names'])
  return {
      'no-names': _npz(**{k: v for k, v in good.items() if k != 'names'}),
      'short-offsets': _npz(**{**good, 'offsets': good['offsets'][:-1]}),
      'offset-past-the-end': _npz(**{**good, 'offsets': good['offsets'] + 10**9}),
      'size-overflowing': _npz(**{**good, 'sizes': np.full(n, 2**62, np.int64),
                                  'offsets': np.full(n, 2**62, np.int64)}),
      'negative-size': _npz(**{**good, 'sizes': -good['sizes']}),
      'class-out-of-range': _npz(**{**good, 'class_ids': good['class_ids'] + 5}),
      'float-offsets': _npz(**{**good, 'offsets': good['offsets'] * 1.0}),
      'scalar-names': _npz(**{**good, 'names': np.array(b'x')}),
      'skipped-a-list': _npz(**{**good, 'skipped': np.array('[]')}),
      'skipped-bad-json': _npz(**{**good, 'skipped': np.array('{')}),
      'objects': _npz(**{**good, 'names': np.array([object()] * n)}),
  }


def test_a_damaged_index_is_ignored_said_once_and_written_again(val_archive, caplog):
  cached = _cached_index(val_archive)
  valid = cached.read_bytes()
  fresh = index_cache.load(val_archive)
  # A flipped byte inside a column: the zip member's CRC-32 no longer matches.
  damaged = {**_damaged(valid), 'middle-byte-flipped': _flipped(valid, len(valid) // 2)}
  for kind, data in {**damaged, **_wrong_shapes(cached)}.items():
    cached.write_bytes(data)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      assert index_cache.load(val_archive) is None, kind
      assert index_cache.load(val_archive) is None, kind  # Said once only.
    _said_once(caplog, cached)
    _cached_index(val_archive)
    again = index_cache.load(val_archive)
    assert again[0].names.tolist() == fresh[0].names.tolist(), kind


def test_a_build_goes_on_past_damaged_indexes_and_rewrites_them(tmp_path, caplog):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'first')
  (cached,) = Path(settings.cache_dir()).glob('index-*.npz')
  cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])
  with caplog.at_level(logging.WARNING):
    build(manual, tmp_path / 'second')
  assert 'BadZipFile' in _said_once(caplog, cached)
  assert read_split(tmp_path / 'second', 'validation') == read_split(
      tmp_path / 'first', 'validation'
  )
  assert index_cache.load(paths.absolute(manual / VAL_TAR)) is not None


# The verified archives.


def _verified_file() -> Path:
  return Path(settings.cache_dir()) / 'verified_archives.json'


def _verify(archive) -> None:
  check = verification.ArchiveCheck(archive, enabled=True)
  check.update(Path(archive).read_bytes())
  check.finish()


def _wrong_json(archive) -> dict[str, bytes]:
  """Valid JSON of another shape than {path: {"file": {...}, "md5": "..."}}."""
  path = str(archive)
  shapes = [
      [], None, 3, 'x', {path: 3}, {path: None}, {path: []},
      {path: {'size': 30720, 'mtime': 1.0, 'md5': 'x'}},  # An older format.
      {path: {'file': 3, 'md5': 'x'}},
      {path: {'file': {}, 'md5': 5}},
      {path: {'file': {}, 'md5': 'x', 'extra': 1}},
  ]
  return {json.dumps(shape): json.dumps(shape).encode() for shape in shapes}


def test_a_damaged_verified_archives_file_is_ignored_said_once_and_rewritten(
    val_archive, caplog
):
  _verify(val_archive)
  valid = _verified_file().read_bytes()
  for kind, data in {**_damaged(valid), **_wrong_json(val_archive)}.items():
    _verified_file().write_bytes(data)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      assert verification.ArchiveCheck(val_archive, enabled=True).needs_hashing, kind
      assert verification.ArchiveCheck(val_archive, enabled=True).needs_hashing, kind
    _said_once(caplog, _verified_file())
    _verify(val_archive)
    assert not verification.ArchiveCheck(val_archive, enabled=True).needs_hashing, kind


def test_a_build_goes_on_past_a_damaged_verified_archives_file(tmp_path, caplog):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'first')
  _verified_file().write_text('[]')
  with caplog.at_level(logging.WARNING):
    build(manual, tmp_path / 'second')
  _said_once(caplog, _verified_file())
  assert metadata(tmp_path / 'second') == metadata(tmp_path / 'first')
  assert not verification.ArchiveCheck(manual / VAL_TAR, enabled=True).needs_hashing


# Kept-shard records.

_SHARD_BYTES = 1000


def _result(**changes) -> dict[str, object]:
  result = shard_writer.ShardResult(
      split='validation', index=0, num_examples=10, num_bytes=_SHARD_BYTES,
      fixed_images={'ILSVRC2012_val_00000001.JPEG': 'CMYK'},
  )
  return {**dataclasses.asdict(result), **changes}


def _kept(folder: Path) -> resume.KeptShards:
  """A kept-shards folder holding one finished, recorded shard, 'shard'."""
  kept = resume.KeptShards(folder)
  kept.partial_path('shard').write_bytes(bytes(_SHARD_BYTES))
  kept.finish('shard', 'key', _result())
  return kept


def _wrong_records(record: dict[str, object]) -> dict[str, dict | list | None]:
  """Records that load but cannot be checked against their shard."""
  without = lambda key: {k: v for k, v in record.items() if k != key}
  result = record['result']
  wrong_results = {
      'no-num-bytes': {k: v for k, v in result.items() if k != 'num_bytes'},
      'extra-field': {**result, 'checksum': 'x'},
      'index-as-text': {**result, 'index': '0'},
      'negative-count': {**result, 'num_examples': -1},
      'bool-count': {**result, 'num_examples': True},
      'float-bytes': {**result, 'num_bytes': float(_SHARD_BYTES)},
      'fixed-a-list': {**result, 'fixed_images': []},
      'fixed-of-ints': {**result, 'fixed_images': {'a': 1}},
      'split-null': {**result, 'split': None},
      'other-size': {**result, 'num_bytes': _SHARD_BYTES + 1},
      'a-list': [],
  }
  return {
      'list': [], 'null': None,
      'no-result': without('result'), 'no-plan': without('plan'),
      'no-file': without('file'), 'plan-a-number': {**record, 'plan': 3},
      'file-a-list': {**record, 'file': []},
      **{f'result-{k}': {**record, 'result': v} for k, v in wrong_results.items()},
  }


def test_a_damaged_kept_record_is_ignored_said_once_and_rewritten(tmp_path, caplog):
  kept = _kept(tmp_path / 'kept')
  record_path = Path(kept.folder / 'shard.kept.json')
  valid = record_path.read_bytes()
  assert kept.reusable('shard', 'key') is not None
  wrong = {k: json.dumps(v).encode() for k, v in _wrong_records(json.loads(valid)).items()}
  for kind, data in {**_damaged(valid), **wrong}.items():
    record_path.write_bytes(data)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      assert kept.count([('shard', 'key')]) == (0, 0), kind
      assert kept.reusable('shard', 'key') is None, kind
    _said_once(caplog, record_path)
    _kept(tmp_path / 'kept')
    assert kept.reusable('shard', 'key').result == _result(), kind
