"""Tests of the classic TFRecord layout: names, shard sizes, records, DALI indexes."""

from __future__ import annotations

import io
import struct

import PIL.Image
import pytest
import tensorflow as tf

from imagenet2012_local.layouts import classic_layout
from tests.helpers import two_lines

WNIDS = ['n01440764', 'n01443537', 'n01484850']


def jpeg(width: int, height: int, mode: str = 'RGB') -> bytes:
  buffer = io.BytesIO()
  PIL.Image.new(mode, (width, height)).save(buffer, format='JPEG')
  return buffer.getvalue()


def expected_record(
    image: bytes,
    file_name: str,
    label: int,
    synset: bytes,
    height: int,
    width: int,
) -> bytes:
  """The record built with TensorFlow's own protos, deterministic bytes."""

  def b(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

  def i(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  feature = {
      'image/encoded': b(image),
      'image/format': b(b'JPEG'),
      'image/filename': b(file_name.encode()),
      'image/class/label': i(label),
      'image/class/synset': b(synset),
      'image/height': i(height),
      'image/width': i(width),
      'image/colorspace': b(b'RGB'),
      'image/channels': i(3),
  }
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  return example.SerializeToString(deterministic=True)


def test_default_shard_counts():
  assert classic_layout.DEFAULT_SHARDS == {
      'train': 1024, 'validation': 128, 'test': 256
  }


def test_shard_name():
  assert classic_layout.shard_name('train', 0, 1024) == 'train-00000-of-01024'
  assert classic_layout.shard_name('validation', 127, 128) == (
      'validation-00127-of-00128'
  )


@pytest.mark.parametrize(
    'total, num_shards, expected',
    [
        (26, 4, [7, 7, 6, 6]),
        (10, 2, [5, 5]),
        (5, 2, [3, 2]),
        (3, 5, [1, 1, 1, 0, 0]),
        (0, 2, [0, 0]),
        (1281167, 1024, [1252] * 143 + [1251] * 881),
    ],
)
def test_shard_sizes_differ_by_at_most_one(total, num_shards, expected):
  sizes = classic_layout.shard_sizes(total, num_shards)
  assert sizes == expected
  assert sum(sizes) == total
  assert max(sizes) - min(sizes) <= 1


def test_dali_index_path(tmp_path):
  assert classic_layout.dali_index_path(tmp_path, 'train-00003-of-01024') == (
      tmp_path / 'dali_idx' / 'train-00003-of-01024.idx'
  )


def test_labelled_record():
  image = jpeg(7, 5)
  record = classic_layout.make_record(image, 1, 'n01443537_1.JPEG', WNIDS)
  # 1-based label, the wnid of the 0-based one; height and width from the header.
  assert record == expected_record(
      image, 'n01443537_1.JPEG', 2, b'n01443537', height=5, width=7
  )


def test_unlabelled_record():
  image = jpeg(3, 9, mode='L')  # Grayscale keeps its bytes: still 3 channels.
  record = classic_layout.make_record(
      image, -1, 'ILSVRC2012_test_00000001.JPEG', WNIDS
  )
  assert record == expected_record(
      image, 'ILSVRC2012_test_00000001.JPEG', -1, b'', height=9, width=3
  )


def test_records_parse_with_the_pipeline_spec():
  spec = classic_layout.pipeline_parse_spec()
  for label in [0, 2, -1]:
    image = jpeg(4, 4)
    record = classic_layout.make_record(image, label, 'x.JPEG', WNIDS)
    example = tf.io.parse_single_example(record, spec)
    assert example['image/encoded'].numpy() == image
    assert int(example['image/class/label']) == (label + 1 if label >= 0 else -1)
    assert example['image/class/text'].numpy() == b''
    for key in ['xmin', 'ymin', 'xmax', 'ymax']:
      assert example[f'image/object/bbox/{key}'].values.shape == (0,)
    assert example['image/object/class/label'].values.shape == (0,)


def test_not_a_jpeg_is_an_error():
  buffer = io.BytesIO()
  PIL.Image.new('RGB', (2, 2)).save(buffer, format='PNG')
  with pytest.raises(classic_layout.NotJpegError, match='n1_2.JPEG') as raised:
    classic_layout.make_record(buffer.getvalue(), 0, 'n1_2.JPEG', WNIDS)
  assert 'convert the image to a JPEG' in two_lines(raised.value)[1]


def test_write_shard_with_dali_index(tmp_path):
  records = [b'a', b'', b'x' * 300]
  path = tmp_path / 'train-00000-of-00001'
  index = classic_layout.dali_index_path(tmp_path, path.name)
  assert classic_layout.write_shard(path, iter(records), index) == 3
  assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records
  # <offset> <size>: the framing's start and length (record + 16 bytes).
  assert index.read_text() == '0 17\n17 16\n33 316\n'
  data = path.read_bytes()
  assert len(data) == 349
  for line, record in zip(index.read_text().splitlines(), records):
    offset, size = map(int, line.split())
    (length,) = struct.unpack('<Q', data[offset : offset + 8])
    assert length == size - 16 == len(record)
    assert data[offset + 12 : offset + 12 + length] == record


def test_write_shard_without_index_and_empty(tmp_path):
  path = tmp_path / 'validation-00001-of-00002'
  assert classic_layout.write_shard(path, []) == 0
  assert path.read_bytes() == b''  # An empty, valid TFRecord file.
  assert list(tf.data.TFRecordDataset(str(path))) == []
  assert list(tmp_path.iterdir()) == [path]
