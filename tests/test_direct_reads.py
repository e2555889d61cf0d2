"""`direct_reads.pieces`: the digest's read of a local archive with direct
reads, several at once, gives every byte in order, falls back where direct
reads are refused, raises read errors, and stops its threads."""

from __future__ import annotations

import errno
import os
import threading

import pytest
from etils import epath

from imagenet2012_local.gate import checksum_tables
from imagenet2012_local.sources import direct_reads

PIECE = 8192  # Small pieces (a multiple of the block size): many of them.


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
  monkeypatch.setattr(direct_reads, 'PIECE', PIECE)
  monkeypatch.setattr(direct_reads, '_IN_FLIGHT', 2)
  monkeypatch.setattr(direct_reads, '_AHEAD', 3)


def _file(tmp_path, size: int) -> tuple[epath.Path, bytes]:
  data = (bytes(range(251)) * (size // 251 + 1))[:size]  # No repeat at PIECE.
  path = epath.Path(tmp_path) / 'archive.tar'
  path.write_bytes(data)
  return path, data


def _reading_threads() -> list[threading.Thread]:
  return [t for t in threading.enumerate() if t.name == 'direct-read']


def _refuse_buffered_reads(monkeypatch) -> None:
  def refuse(f):
    raise AssertionError('read through the page cache')

  monkeypatch.setattr(checksum_tables, 'chunks', refuse)


@pytest.fixture
def direct_file_system(tmp_path):
  """Skips where the test's file system refuses direct reads (tmpfs)."""
  path, _ = _file(tmp_path, PIECE)
  fd = direct_reads.open_direct(path)
  if fd is None:
    pytest.skip(f'{tmp_path} refuses direct reads')
  os.close(fd)


@pytest.mark.parametrize('size', [0, 1, 4095, PIECE, PIECE * 3, PIECE * 7 + 100])
def test_every_byte_in_order(tmp_path, monkeypatch, direct_file_system, size):
  path, data = _file(tmp_path, size)
  _refuse_buffered_reads(monkeypatch)
  pieces = [bytes(p) for p in direct_reads.pieces(path)]
  assert b''.join(pieces) == data
  assert all(pieces)  # No empty piece is handed out.
  assert not _reading_threads()


def test_where_direct_reads_are_refused_the_page_cache_is_read(tmp_path, monkeypatch):
  path, data = _file(tmp_path, PIECE * 5 + 1)
  real_open = os.open

  def refuse_direct(name, flags, *args):
    if flags & direct_reads._O_DIRECT:
      raise OSError(errno.EINVAL, 'Invalid argument')
    return real_open(name, flags, *args)

  monkeypatch.setattr(direct_reads, '_O_DIRECT', os.O_DIRECT)
  monkeypatch.setattr(os, 'open', refuse_direct)
  assert b''.join(bytes(p) for p in direct_reads.pieces(path)) == data


def test_a_read_error_is_raised_in_order(tmp_path, monkeypatch, direct_file_system):
  path, data = _file(tmp_path, PIECE * 10)
  real_preadv = os.preadv

  def fail_at_piece_4(fd, buffers, offset):
    if offset >= PIECE * 4:
      raise OSError(errno.EIO, 'Input/output error')
    return real_preadv(fd, buffers, offset)

  monkeypatch.setattr(os, 'preadv', fail_at_piece_4)
  got = bytearray()
  with pytest.raises(OSError, match='Input/output error'):
    for piece in direct_reads.pieces(path):
      got += piece
  assert bytes(got) == data[: PIECE * 4]
  assert not _reading_threads()


def test_a_file_that_shrinks_while_read_is_an_error(tmp_path, monkeypatch, direct_file_system):
  path, _ = _file(tmp_path, PIECE * 4)
  real_preadv = os.preadv

  def short_at_piece_2(fd, buffers, offset):
    got = real_preadv(fd, buffers, offset)
    return got // 2 if offset == PIECE * 2 else got

  monkeypatch.setattr(os, 'preadv', short_at_piece_2)
  with pytest.raises(OSError, match='the file changed while it was read'):
    list(direct_reads.pieces(path))


def test_stopping_early_stops_the_reading_threads(tmp_path, direct_file_system):
  path, data = _file(tmp_path, PIECE * 20)
  pieces = direct_reads.pieces(path)
  assert bytes(next(pieces)) == data[:PIECE]
  assert _reading_threads()
  pieces.close()
  assert not _reading_threads()
