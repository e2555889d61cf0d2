"""TFRecord files written and read without TensorFlow's per-record cost.

TF's `TFRecordWriter` costs more per record than all the other per-example
work together (docs/performance.md). A TFRecord is simple framing, so it is
written directly: little-endian uint64 length, masked CRC-32C of the length,
the record, masked CRC-32C of the record. google-crc32c computes the
checksums in hardware. Reading checks both checksums, so
a corrupted file fails instead of yielding damaged records.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

from etils import epath
import google_crc32c

from imagenet2012_local import errors

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
  """TFRecord's checksum: CRC-32C, rotated right by 15 bits, plus a constant."""
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


FRAMING_BYTES = 16  # Length, its CRC and the record's CRC around each record.
_HEADER = struct.Struct('<QI')  # Length and its masked CRC.
_CRC = struct.Struct('<I')


class CorruptRecordError(errors.Imagenet2012LocalError, ValueError):
  """A TFRecord file is truncated or fails a checksum."""


class Writer:
  """Appends records to a new TFRecord file."""

  def __init__(self, path: str | os.PathLike[str]):
    self._file = epath.Path(path).open('wb')
    self._offset = 0

  def __enter__(self) -> Writer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def write(self, record: bytes) -> int:
    """Appends `record`; returns the offset where its framing starts."""
    self._file.write(frame_head(record))
    self._file.write(record)
    self._file.write(frame_tail(record))
    offset = self._offset
    self._offset += len(record) + FRAMING_BYTES
    return offset

  def close(self) -> None:
    self._file.close()


def frame_head(record: bytes) -> bytes:
  """What precedes `record` in a TFRecord file: its length and the length's CRC."""
  length = struct.pack('<Q', len(record))
  return length + struct.pack('<I', masked_crc32c(length))


def frame_tail(record: bytes) -> bytes:
  """What follows `record` in a TFRecord file: its CRC."""
  return struct.pack('<I', masked_crc32c(record))


def write(path: str | os.PathLike[str], records: Iterable[bytes]) -> list[int]:
  """Writes `records` as a TFRecord file; returns each record's start offset."""
  with Writer(path) as writer:
    return [writer.write(record) for record in records]


def read(path: str | os.PathLike[str]) -> Iterator[bytes]:
  """The records of a TFRecord file, each checked against its CRCs.

  Raises:
    CorruptRecordError: The file is truncated or a checksum does not match.
  """
  with epath.Path(path).open('rb') as f:
    while header := f.read(_HEADER.size):
      if len(header) != _HEADER.size:
        raise _corrupt(path, 'truncated record header')
      length, length_crc = _HEADER.unpack(header)
      if masked_crc32c(header[:8]) != length_crc:
        raise _corrupt(path, 'corrupted record length')
      record = f.read(length)
      crc = f.read(_CRC.size)
      if len(record) != length or len(crc) != _CRC.size:
        raise _corrupt(path, 'truncated record')
      if masked_crc32c(record) != _CRC.unpack(crc)[0]:
        raise _corrupt(path, 'corrupted record')
      yield record


def _corrupt(path: str | os.PathLike[str], problem: str) -> CorruptRecordError:
  return CorruptRecordError(errors.two_lines(
      f'{path}: {problem}',
      'The file was damaged or cut short after it was written: write it again'
      ' (for a shard of a prepared dataset, rebuild the dataset).',
  ))
