"""Our direct example serializer writes exactly TFDS's bytes."""

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

import imagenet2012_local  # noqa: F401  (registers the builder)
from imagenet2012_local.layouts import example_encoding
from tests.helpers import two_lines

FEATURES = tfds.builder('imagenet2012_local').info.features
SERIALIZER = example_serializer.ExampleSerializer(FEATURES.get_serialized_info())


def _tfds_bytes(image: bytes, label: int, file_name: str) -> bytes:
  encoded = FEATURES.encode_example(
      {'image': image, 'label': label, 'file_name': file_name}
  )
  return SERIALIZER.get_tf_example(encoded).SerializeToString(deterministic=True)


@pytest.mark.parametrize('label', [0, 1, 127, 128, 999, -1])
@pytest.mark.parametrize('image_size', [0, 1, 127, 128, 16_383, 16_384, 2_097_152])
def test_same_bytes_as_tfds(label, image_size):
  image = bytes(range(256)) * (image_size // 256) + b'\xff' * (image_size % 256)
  name = 'n01440764_10026.JPEG'
  assert example_encoding.serialize(image, label, name) == _tfds_bytes(image, label, name)


def test_non_ascii_file_names():
  name = 'ILSVRC2012_val_é_00000001.JPEG'
  assert example_encoding.serialize(b'x', 3, name) == _tfds_bytes(b'x', 3, name)


def test_tfrecord_files_equal_tensorflows(tmp_path):
  import tensorflow as tf

  from imagenet2012_local.layouts import tfrecords

  records = [b'', b'a', bytes(range(256)) * 500, b'\x00' * 70_000]
  offsets = tfrecords.write(tmp_path / 'ours', records)
  with tf.io.TFRecordWriter(str(tmp_path / 'tf')) as writer:
    for record in records:
      writer.write(record)
  ours = (tmp_path / 'ours').read_bytes()
  assert ours == (tmp_path / 'tf').read_bytes()
  assert offsets == [0, 16, 33, 33 + 16 + 128_000]
  assert list(tf.data.TFRecordDataset(str(tmp_path / 'ours')).as_numpy_iterator()) == records


def _tf_example(features: dict) -> 'tf.train.Example':
  import tensorflow as tf

  def feature(value):
    if isinstance(value, bytes):
      return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  return tf.train.Example(
      features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
  )


@pytest.mark.parametrize('label, synset', [(1, b'n01440764'), (1000, b'n15075141'), (-1, b'')])
@pytest.mark.parametrize('image_size', [0, 127, 128, 16_384, 2_097_152])
def test_classic_features_same_bytes_as_deterministic_protobuf(label, synset, image_size):
  features = {
      'image/encoded': b'\xff' * image_size,
      'image/format': b'JPEG',
      'image/filename': 'ILSVRC2012_val_é_00000001.JPEG'.encode(),
      'image/class/label': label,
      'image/class/synset': synset,
      'image/height': 333,
      'image/width': 500,
      'image/colorspace': b'RGB',
      'image/channels': 3,
  }
  expected = _tf_example(features).SerializeToString(deterministic=True)
  assert example_encoding.serialize_features(features) == expected


def test_parse_reads_protobufs_examples():
  import tensorflow as tf

  example = tf.train.Example(
      features=tf.train.Features(
          feature={
              'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[-1, 0, 2**63 - 1, 300])),
              'image': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'\xff' * 200_000, b''])),
              'file_name': tf.train.Feature(bytes_list=tf.train.BytesList(value=['é.JPEG'.encode()])),
              'empty': tf.train.Feature(),
          }
      )
  )
  assert example_encoding.parse(example.SerializeToString()) == {
      'label': [-1, 0, 2**63 - 1, 300],
      'image': [b'\xff' * 200_000, b''],
      'file_name': ['é.JPEG'.encode()],
      'empty': [],
  }
  stored = example_encoding.serialize(b'jpeg', 7, 'n01440764_1.JPEG')
  assert example_encoding.parse(stored) == {
      'image': [b'jpeg'],
      'label': [7],
      'file_name': [b'n01440764_1.JPEG'],
  }


def test_parse_accepts_unpacked_int64s():
  # Int64List.value = 5 as one unpacked varint field, as older writers emit.
  values = bytes([0x08, 0x05])
  feature = bytes([0x1A, len(values)]) + values
  entry = bytes([0x0A, 1]) + b'n' + bytes([0x12, len(feature)]) + feature
  record = bytes([0x0A, len(entry) + 2, 0x0A, len(entry)]) + entry
  assert example_encoding.parse(record) == {'n': [5]}


def test_parse_rejects_truncated_examples():
  record = example_encoding.serialize(b'jpeg', 7, 'n01440764_1.JPEG')
  with pytest.raises(ValueError, match='truncated'):
    example_encoding.parse(record[:-1])


def test_tfrecord_read_reads_tensorflows_files(tmp_path):
  import tensorflow as tf

  from imagenet2012_local.layouts import tfrecords

  records = [b'', b'a', bytes(range(256)) * 500, b'\x00' * 70_000]
  with tf.io.TFRecordWriter(str(tmp_path / 'tf')) as writer:
    for record in records:
      writer.write(record)
  assert list(tfrecords.read(tmp_path / 'tf')) == records
  tf.io.TFRecordWriter(str(tmp_path / 'empty')).close()
  assert list(tfrecords.read(tmp_path / 'empty')) == []


@pytest.mark.parametrize(
    'offset, message',
    [(0, 'length'), (12, 'corrupted record'), (17, 'corrupted record')],
)
def test_tfrecord_read_catches_corruption(tmp_path, offset, message):
  from imagenet2012_local.layouts import tfrecords

  tfrecords.write(tmp_path / 'file', [b'abcde', b'fgh'])
  data = bytearray((tmp_path / 'file').read_bytes())
  data[offset] ^= 1  # The length, the first record, its CRC.
  (tmp_path / 'file').write_bytes(bytes(data))
  with pytest.raises(tfrecords.CorruptRecordError, match=message) as raised:
    list(tfrecords.read(tmp_path / 'file'))
  assert 'write it again' in two_lines(raised.value)[1]


def test_tfrecord_read_catches_truncation(tmp_path):
  from imagenet2012_local.layouts import tfrecords

  tfrecords.write(tmp_path / 'file', [b'abcde', b'fgh'])
  data = (tmp_path / 'file').read_bytes()
  for end in [len(data) - 1, len(data) - 4, 21 + 5]:
    (tmp_path / 'file').write_bytes(data[:end])
    with pytest.raises(tfrecords.CorruptRecordError, match='truncated') as raised:
      list(tfrecords.read(tmp_path / 'file'))
    assert 'write it again' in two_lines(raised.value)[1]
