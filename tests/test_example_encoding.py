"""Our direct example serializer writes exactly TFDS's bytes."""

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

import imagenet2012_local  # noqa: F401  (registers the builder)
from imagenet2012_local import example_encoding

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

  from imagenet2012_local import tfrecords

  records = [b'', b'a', bytes(range(256)) * 500, b'\x00' * 70_000]
  offsets = tfrecords.write(tmp_path / 'ours', records)
  with tf.io.TFRecordWriter(str(tmp_path / 'tf')) as writer:
    for record in records:
      writer.write(record)
  ours = (tmp_path / 'ours').read_bytes()
  assert ours == (tmp_path / 'tf').read_bytes()
  assert offsets == [0, 16, 33, 33 + 16 + 128_000]
  assert list(tf.data.TFRecordDataset(str(tmp_path / 'ours')).as_numpy_iterator()) == records
