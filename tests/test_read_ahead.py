"""`checksum_tables.chunks`: the digest's sequential read, read ahead on a
thread, gives every byte in order, raises read errors, and stops its thread."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from imagenet2012_local.gate import checksum_tables

PIECE = 7  # Small pieces: many of them, and sizes that are not multiples.


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
  monkeypatch.setattr(checksum_tables, 'READ_PIECE', PIECE)
  monkeypatch.setattr(checksum_tables, 'CLOUD_READ_PIECE', PIECE * 2)


class _ReadOnly:
  """A file object with `read` and no `readinto`, as tf.io.gfile's."""

  def __init__(self, data: bytes):
    self._file = io.BytesIO(data)

  def read(self, size: int) -> bytes:
    return self._file.read(size)


class _FailsAfter(io.BytesIO):
  """Reads `good` bytes, then raises the way a failing disk does."""

  def __init__(self, data: bytes, good: int):
    super().__init__(data)
    self._good = good

  def readinto(self, buffer) -> int:
    if self.tell() >= self._good:
      raise OSError(5, 'Input/output error')
    return super().readinto(buffer)


def _read_ahead_threads() -> list[threading.Thread]:
  return [t for t in threading.enumerate() if t.name == 'read-ahead']


@pytest.mark.parametrize('size', [0, 1, PIECE, PIECE * 8, PIECE * 8 + 1, 1000])
@pytest.mark.parametrize('make_file', [io.BytesIO, _ReadOnly])
def test_every_byte_in_order(size, make_file):
  data = (bytes(range(256)) * 4)[:size]
  pieces = [bytes(p) for p in checksum_tables.chunks(make_file(data))]
  assert b''.join(pieces) == data
  assert all(pieces)  # No empty piece is handed out.
  assert not _read_ahead_threads()


def test_a_real_file_hashes_as_hashlib_does(tmp_path):
  path = tmp_path / 'archive.tar'
  path.write_bytes(bytes(range(256)) * 100)
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for piece in checksum_tables.chunks(f):
      digest.update(piece)
  assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_read_error_is_raised_to_the_caller():
  data = bytes(1000)
  got = bytearray()
  with pytest.raises(OSError, match='Input/output error'):
    for piece in checksum_tables.chunks(_FailsAfter(data, good=PIECE * 20)):
      got += piece
  assert bytes(got) == data[: PIECE * 20]
  assert not _read_ahead_threads()


def test_stopping_early_stops_the_reading_thread():
  pieces = checksum_tables.chunks(io.BytesIO(bytes(10_000)))
  next(pieces)
  assert _read_ahead_threads()
  pieces.close()
  assert not _read_ahead_threads()
