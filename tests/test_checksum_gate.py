"""The checksum gate: archive sizes and digests checked against the known
copies before anything is published; remembered; turned off on request."""

from __future__ import annotations

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.gate import checksum_tables
from imagenet2012_local import settings
from imagenet2012_local.gate import verification
from tests.helpers import (
    DEVKIT,
    DUMMY_DIR,
    NAME,
    TEST_TAR,
    TRAIN_TAR,
    VAL_TAR,
    build,
    failed_build,
    manual_dir_with,
    metadata,
    read_split,
    two_lines,
)

DUMMY_TABLE = DUMMY_DIR.parent / 'checksums' / 'dummy_data.tsv'


def _corrupt_one_byte(path) -> None:
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF  # Inside an image: the tar still reads.
  path.write_bytes(bytes(data))


def _hash_with(monkeypatch, algorithm: str) -> None:
  """Makes `algorithm` the digest this CPU computes fastest."""
  others = tuple(a for a in checksum_tables.DIGEST_NAMES if a != algorithm)
  monkeypatch.setattr(
      checksum_tables, 'digests_fastest_first', lambda: (algorithm, *others)
  )


def _known_copy(name: str) -> checksum_tables.ArchiveDigest:
  return next(d for d in checksum_tables.read_table(DUMMY_TABLE) if d.name == name)


def test_archives_are_recorded_as_verified(dummy_build):
  known = {row.name: row for row in checksum_tables.read_table(DUMMY_TABLE)}
  splits = {'train': TRAIN_TAR, 'validation': VAL_TAR, 'test': TEST_TAR}
  assert metadata(dummy_build)['archives'] == {
      tar: {
          'split': split,
          'bytes': known[tar].size,
          'md5': known[tar].md5,
          'status': 'verified',
      }
      for split, tar in splits.items()
  }


@pytest.mark.parametrize('algorithm', ['md5', 'sha256'])
def test_a_digest_mismatch_fails_before_publishing(tmp_path, monkeypatch, algorithm):
  _hash_with(monkeypatch, algorithm)
  manual = manual_dir_with(tmp_path, VAL_TAR)
  _corrupt_one_byte(manual / VAL_TAR)
  what, fix = failed_build(manual, tmp_path / 'data', verification.ChecksumError)
  assert str(manual / VAL_TAR) in what and 'Nothing was published' in what
  assert f'has {checksum_tables.DIGEST_NAMES[algorithm]} ' in what
  assert _known_copy(VAL_TAR).digest(algorithm) in what
  assert 'Re-download it' in fix
  # Says how to opt out, from either command.
  assert '--no_verify' in fix and f'{settings.VERIFY_ENV_VAR}=0 tfds build' in fix


@pytest.mark.parametrize('size', [31_232, 29_696], ids=['padded', 'cut'])
def test_wrong_size_fails_at_once(tmp_path, size):
  """Before any hashing: the known size alone catches a cut or padded archive."""
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = (manual / VAL_TAR).read_bytes()
  (manual / VAL_TAR).write_bytes(data[:size].ljust(size, b'\0'))
  what, fix = failed_build(manual, tmp_path / 'data', verification.ChecksumError)
  # Each size with the table it comes from: the dummy data's is no real
  # user's expectation.
  assert what == (
      f'{manual / VAL_TAR} is {size:,} bytes; the known copies are'
      ' 6,744,924,160 bytes (imagenet2012.tsv) or 30,720 bytes (dummy_data.tsv).'
  )
  assert 'Re-download it' in fix and settings.VERIFY_ENV_VAR in fix


@pytest.mark.parametrize('algorithm', ['md5', 'sha256'])
def test_either_digest_verifies_and_records_the_md5(tmp_path, monkeypatch, algorithm):
  _hash_with(monkeypatch, algorithm)
  manual = manual_dir_with(tmp_path, VAL_TAR, DEVKIT)
  build(manual, tmp_path / 'data')
  archives = metadata(tmp_path / 'data')['archives']
  assert archives[VAL_TAR]['status'] == 'verified'
  assert archives[VAL_TAR]['md5'] == _known_copy(VAL_TAR).md5


def test_md5_is_used_where_the_table_knows_no_sha256(tmp_path, monkeypatch):
  _hash_with(monkeypatch, 'sha256')
  archive = tmp_path / 'some_archive.tar'
  archive.write_bytes((DUMMY_DIR / VAL_TAR).read_bytes())
  known = _known_copy(VAL_TAR)
  table = tmp_path / 'md5_only.tsv'
  table.write_text(f'{archive.name}\t{archive.stat().st_size}\t{known.md5}\t-\n')
  monkeypatch.setenv(settings.EXTRA_TABLES_ENV_VAR, str(table))
  check = verification.ArchiveCheck(archive, enabled=True)
  assert check.algorithm == 'md5'
  check.update(archive.read_bytes())
  check.finish()
  assert check.summary() == {
      'bytes': archive.stat().st_size, 'md5': known.md5, 'status': 'verified'
  }


def test_both_digests_are_timed():
  assert sorted(checksum_tables.digests_fastest_first()) == ['md5', 'sha256']


def test_builder_argument_turns_the_gate_off(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  _corrupt_one_byte(manual / VAL_TAR)
  build(manual, tmp_path / 'data', verify_checksums=False)
  assert metadata(tmp_path / 'data')['archives'][VAL_TAR] == {
      'split': 'validation',
      'bytes': (manual / VAL_TAR).stat().st_size,
      'md5': None,
      'status': 'not verified: the check is turned off',
  }


def test_environment_variable_turns_the_gate_off(tmp_path, monkeypatch):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  _corrupt_one_byte(manual / VAL_TAR)
  monkeypatch.setenv(settings.VERIFY_ENV_VAR, '0')
  build(manual, tmp_path / 'data')
  assert len(read_split(tmp_path / 'data', 'validation')) == 10


def test_a_setting_that_is_neither_on_nor_off(monkeypatch):
  monkeypatch.setenv(settings.VERIFY_ENV_VAR, 'maybe')
  with pytest.raises(ValueError) as error:
    tfds.builder(NAME)
  what, fix = two_lines(error.value)
  assert f"{settings.VERIFY_ENV_VAR}='maybe' is neither on nor off" in what
  assert '1 (on) or 0 (off)' in fix
