"""tf.train.Examples written and read straight in the protobuf wire format.

TFDS's generic route (FeaturesDict.encode_example, a tf.train.Example proto,
SerializeToString) is the largest per-example cost of a build in Python,
and building the export's protos costs as much (docs/performance.md).
Our Examples hold only one-value bytes and int64 features, so their wire
format is written directly, with the image copied once. The bytes are exactly
those of protobuf's deterministic (key-sorted map) serialization, and tests
compare the two on every kind of example. `parse` reads Examples back the same
way, which spares the export TensorFlow's import.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping

# Wire-format tags: (field number << 3) | 2, "length-delimited".
_FIELD_1 = 0x0A  # Example.features, Features.feature, map key, BytesList.value, Feature.bytes_list, Int64List.value
_FIELD_2 = 0x12  # map value
_FIELD_3 = 0x1A  # Feature.int64_list
# Payload bytes of the fixed-size wire types: 1, 64-bit; 5, 32-bit.
_FIXED_SIZES = {1: 8, 5: 4}
_ONE_BYTE = [bytes([b]) for b in range(0x80)]
# Distinct (key, int value) pairs kept encoded: labels, heights, widths...
_CACHED_INT_ENTRIES = 1 << 16


def _varint(value: int) -> bytes:
  if 0 <= value < 0x80:  # Most tags, keys and lengths: skip the loop.
    return _ONE_BYTE[value]
  value &= (1 << 64) - 1  # Negative int64s are written as their two's complement.
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _varint_size(value: int) -> int:
  """len(_varint(value)) of a length (never negative)."""
  return (value.bit_length() + 6) // 7 or 1


def _header(tag: int, length: int) -> bytes:
  return _ONE_BYTE[tag] + _varint(length)


@functools.cache
def _key_field(key: str) -> bytes:
  """A Features map entry's key field, then its value's tag."""
  encoded = key.encode()
  return _header(_FIELD_1, len(encoded)) + encoded + _ONE_BYTE[_FIELD_2]


@functools.lru_cache(maxsize=_CACHED_INT_ENTRIES)
def _int64_entry(key: str, value: int | tuple[int, ...]) -> bytes:
  """The whole Features map entry of an int64 feature: one value, or a list."""
  packed = b''.join(map(_varint, value)) if isinstance(value, tuple) else _varint(value)
  # Protobuf writes no packed field for an empty list: an empty Int64List.
  values = _header(_FIELD_1, len(packed)) + packed if packed else b''
  feature = _header(_FIELD_3, len(values)) + values
  entry = _key_field(key) + _varint(len(feature)) + feature
  return _header(_FIELD_1, len(entry)) + entry


def _bytes_entry_head(key: str, size: int) -> bytes:
  """Everything of a one-value bytes feature's map entry before its value,
  which is `size` bytes long."""
  values_size = 1 + _varint_size(size) + size
  feature_size = 1 + _varint_size(values_size) + values_size
  key_field = _key_field(key)
  entry_size = len(key_field) + _varint_size(feature_size) + feature_size
  return b''.join((
      _header(_FIELD_1, entry_size),
      key_field,
      _varint(feature_size),
      _header(_FIELD_1, values_size),
      _header(_FIELD_1, size),
  ))


def serialize(image: bytes, label: int, file_name: str) -> bytes:
  """The serialized tf.train.Example of one imagenet2012 example."""
  return serialize_features(features(image, label, file_name))


def features(
    image: bytes | ByteCount, label: int, file_name: str
) -> dict[str, bytes | ByteCount | int]:
  """The features of one imagenet2012 example (`ByteCount`: see
  `serialized_size`)."""
  return {'image': image, 'label': label, 'file_name': file_name.encode()}


def serialize_features(features: Mapping[str, bytes | int | tuple[int, ...]]) -> bytes:
  """A serialized tf.train.Example of one-value bytes and int64 features, and
  int64 lists (tuples, e.g. a `Sequence(ClassLabel)`).

  The bytes are those of `SerializeToString(deterministic=True)`: map entries
  in key order. Each value is copied once, by the final join; what surrounds
  it is computed from its length, and int features are cached whole (a label
  takes one of 1,000 values), not written field by field for each example.
  """
  parts = _parts(features)
  return b''.join([_header(_FIELD_1, sum(map(len, parts))), *parts])


class ByteCount(int):
  """Stands for a bytes feature's value of this many bytes in
  `serialized_size`: a record's size without its bytes."""


def serialized_size(
    features: Mapping[str, bytes | ByteCount | int | tuple[int, ...]]
) -> int:
  """len(serialize_features(features)), where a `ByteCount` stands for a
  bytes value of that length."""
  size = sum(
      part if isinstance(part, ByteCount) else len(part)
      for part in _parts(features)
  )
  return len(_header(_FIELD_1, size)) + size


def _parts(features: Mapping[str, object]) -> list[bytes | ByteCount]:
  """The map entries of `features` in key order, each value once."""
  parts = []
  for key in sorted(features):
    value = features[key]
    if isinstance(value, (bytes, ByteCount)):
      size = value if isinstance(value, ByteCount) else len(value)
      parts += (_bytes_entry_head(key, size), value)
    else:
      parts.append(_int64_entry(key, value))
  return parts


def parse(record: bytes) -> dict[str, list[bytes] | list[int]]:
  """The bytes and int64 features of a serialized tf.train.Example.

  Reads the wire format directly, so exporting needs no TensorFlow, whose
  import costs seconds. Packed and unpacked int64 lists are both accepted,
  as protobuf does.

  Raises:
    ValueError: `record` is not an Example, or holds a float feature.
  """
  features = {}
  for field, start, end in _fields(record, 0, len(record)):
    if field != (1, 2):  # Example.features.
      continue
    for entry, entry_start, entry_end in _fields(record, start, end):
      if entry != (1, 2):  # Features.feature.
        continue
      key, value = '', []
      for part, part_start, part_end in _fields(record, entry_start, entry_end):
        if part == (1, 2):
          key = record[part_start:part_end].decode()
        elif part == (2, 2):
          value = _feature_values(record, part_start, part_end)
      features[key] = value
  return features


def _feature_values(
    record: bytes, start: int, end: int
) -> list[bytes] | list[int]:
  """The values of the Feature message in `record[start:end]`."""
  values = []
  for field, list_start, list_end in _fields(record, start, end):
    if field == (1, 2):  # bytes_list.
      values = [
          record[s:e]
          for f, s, e in _fields(record, list_start, list_end)
          if f == (1, 2)
      ]
    elif field == (3, 2):  # int64_list.
      values = []
      for f, s, e in _fields(record, list_start, list_end):
        if f == (1, 0):  # One unpacked value, as an int.
          values.append(_signed(s))
        elif f == (1, 2):  # Packed values.
          while s < e:
            value, s = _read_varint(record, s)
            values.append(_signed(value))
    elif field[0] == 2:
      raise ValueError('float features are not supported')
  return values


def _fields(
    data: bytes, pos: int, end: int
) -> Iterator[tuple[tuple[int, int], int, int]]:
  """The fields of the message in `data[pos:end]`.

  Yields:
    ((field number, wire type), start, end) of each length-delimited field's
    payload; for a varint field, (key, value, position after it).
  """
  while pos < end:
    key, pos = _read_varint(data, pos)
    wire_type = key & 7
    if wire_type == 0:
      value, pos = _read_varint(data, pos)
      yield (key >> 3, 0), value, pos
    elif wire_type == 2:
      length, pos = _read_varint(data, pos)
      if pos + length > end:
        raise ValueError('truncated protobuf message')
      yield (key >> 3, 2), pos, pos + length
      pos += length
    elif wire_type in _FIXED_SIZES:
      pos += _FIXED_SIZES[wire_type]
    else:
      raise ValueError(f'unsupported protobuf wire type {wire_type}')
  if pos != end:
    raise ValueError('truncated protobuf message')


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
  """The varint at `data[pos]` and the position after it."""
  value = shift = 0
  while True:
    if pos >= len(data):
      raise ValueError('truncated protobuf varint')
    byte = data[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    if byte < 0x80:
      return value, pos
    shift += 7


def _signed(value: int) -> int:
  """An int64 from its varint (two's complement of negatives)."""
  return value - (1 << 64) if value >= 1 << 63 else value
