"""imagenet2012_local_resized: TFDS `imagenet_resized`'s examples, downsampled
from the archives with the box filter, labels in that dataset's class order."""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core import example_serializer

import imagenet2012_local  # noqa: F401  (registers the builders)
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.sources import labels
from imagenet2012_local.layouts import png_encoding
from imagenet2012_local.layouts import resized_layout
from imagenet2012_local import settings
from imagenet2012_local.sources import split_sources
from imagenet2012_local.variants import variant_files
from imagenet2012_local.engine import worker_pool
from tests import fake_archives
from tests.helpers import (
    DUMMY_DIR, TEST_TAR, VAL_TAR, build, manual_dir_with, metadata, read_split,
    two_lines,
)
# A function of a module that imports no TFDS, for a worker to run.
from tests.test_worker_pool import _imports_tfds

NAME = 'imagenet2012_local_resized'
SORTED_WNIDS = labels.class_names_file().read_text().split()
ORDER = resized_layout.label_order(SORTED_WNIDS)


def _smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
  """A size x size photo-like image: noise upscaled, then box-downsampled."""
  noise = rng.integers(0, 256, (rng.integers(2, 12), rng.integers(2, 12), 3), np.uint8)
  photo = Image.fromarray(noise).resize((500, 375), Image.Resampling.BICUBIC)
  return np.asarray(photo.resize((size, size), Image.Resampling.BOX))


def _test_images() -> list[np.ndarray]:
  rng = np.random.default_rng(0)
  images = []
  # The configs' sizes, and others: 1 row or column (libpng drops filters),
  # 100 x 100 (image data over 16 KiB: the zlib window is not shrunk).
  for size in (8, 16, 32, 64, 1, 5, 100):
    images += [_smooth_image(rng, size) for _ in range(6)]
    images.append(rng.integers(0, 256, (size, size, 3), np.uint8))  # Incompressible.
    images.append(np.full((size, size, 3), 255, np.uint8))  # Two IDAT bytes a row.
  images.append(rng.integers(0, 256, (3, 90, 3), np.uint8))  # Not square.
  return images


@pytest.mark.parametrize('pixels', _test_images(), ids=lambda p: 'x'.join(map(str, p.shape)))
def test_png_is_tf_encode_pngs_bytes(pixels):
  assert png_encoding.encode_rgb(pixels) == tf.io.encode_png(pixels).numpy()


def test_labels_follow_imagenet_resized_order():
  # Hand-checked in variant_data/imagenet_resized/imagenet_resized_labels.txt:
  # n01440764 (tench, sorted label 0) is its line 449, n15075141 (toilet
  # tissue, sorted 999) line 889; its line 1 is n02119789 (kit fox, sorted 278).
  assert SORTED_WNIDS[0] == 'n01440764' and ORDER[0] == 448
  assert SORTED_WNIDS[999] == 'n15075141' and ORDER[999] == 888
  assert SORTED_WNIDS[278] == 'n02119789' and ORDER[278] == 0
  assert sorted(ORDER) == list(range(1000))
  names = tfds.builder(f'{NAME}/8x8').info.features['label'].names
  assert [names[ORDER[label]] for label in range(1000)] == SORTED_WNIDS


def test_shipped_labels_file_is_tfds_ones():
  data = resized_layout.LABELS_FILE.read_bytes()
  digest = 'e85e4969a881deb8a8ba329357d033f7a664de8f1e099f593ad723bcf79bbfe5'
  assert hashlib.sha256(data).hexdigest() == digest
  assert digest in (variant_files.DATA_DIR / 'README.md').read_text()
  installed = Path(tfds.__file__).parent / 'image_classification' / 'imagenet_resized_labels.txt'
  assert data == installed.read_bytes()


@pytest.mark.parametrize('config', ['8x8', '16x16', '32x32', '64x64'])
def test_records_are_tfds_serializers_bytes_for_the_array(config, tmp_path):
  """Byte for byte what upstream writes: TFDS's own PNG of the downsampled array."""
  builder = tfds.builder(f'{NAME}/{config}', data_dir=tmp_path)
  features = builder.info.features
  serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
  size = builder.builder_config.size
  layout = resized_layout.ResizedLayout(builder, ['train'], size, ORDER)
  rng = np.random.default_rng(size)
  for label, (width, height) in zip([0, 278, 999], [(500, 375), (40, 90), (size, size)]):
    image = fake_archives.encode_image(rng, width, height)
    pixels = _box(image, size)
    expected = serializer.get_tf_example(
        features.encode_example({'image': pixels, 'label': ORDER[label]})
    ).SerializeToString(deterministic=True)
    assert layout.encode(image, label, 'n01440764_1.JPEG') == expected


def _box(image: bytes, size: int) -> np.ndarray:
  """The documented method: Pillow's full decode, RGB, squashed with BOX."""
  with Image.open(io.BytesIO(image)) as opened:
    return np.asarray(opened.convert('RGB').resize((size, size), Image.Resampling.BOX))


def _expected(dummy_build: Path, split: str, size: int) -> collections.Counter:
  """(label, pixels) of every image the main build stored, downsampled here."""
  return collections.Counter(
      (ORDER[label], _box(image, size).tobytes())
      for label, image in read_split(dummy_build, split).values()
  )


def _built(data_dir: Path, config: str, split: str) -> collections.Counter:
  ds = tfds.load(f'{NAME}/{config}', split=split, data_dir=data_dir, as_supervised=True)
  return collections.Counter(
      (int(label), image.tobytes()) for image, label in tfds.as_numpy(ds)
  )


@pytest.mark.parametrize('config, max_examples, read_order', [
    ('8x8', None, 'by-offset'),
    ('32x32', None, 'auto'),
    # The archives read in order: records are still written by offset, as
    # their sizes are known only once encoded.
    ('64x64', None, 'in-order'),
    ('16x16', 100, 'auto'),  # 100: TFDS's generator path.
])
def test_built_images_are_the_documented_downsampling(
    config, max_examples, read_order, dummy_build, tmp_path, monkeypatch
):
  monkeypatch.setenv(settings.READ_ORDER_ENV_VAR, read_order)
  builder = tfds.builder(f'{NAME}/{config}', data_dir=tmp_path)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=DUMMY_DIR, max_examples_per_split=max_examples
  ))
  size = builder.builder_config.size
  assert set(builder.info.splits) == {'train', 'validation'}  # The test archive unread.
  assert builder.info.supervised_keys == ('image', 'label')
  assert 'arXiv:1707.08819' in builder.info.citation  # The paper's, as upstream's.
  assert builder.info.features['image'].shape == (size, size, 3)
  assert builder.info.features['image'].encoding_format in (None, 'png')
  # The fixed images (CMYK, PNG) are downsampled from their fixed bytes.
  assert metadata(dummy_build)['fixed_images']['train']
  for split in ('train', 'validation'):
    assert _built(tmp_path, config, split) == _expected(dummy_build, split, size)
  stored = tfds.load(
      f'{NAME}/{config}', split='validation', data_dir=tmp_path,
      decoders={'image': tfds.decode.SkipDecoding()},
  )
  for example in tfds.as_numpy(stored):
    assert example['image'].startswith(b'\x89PNG\r\n\x1a\n')


def test_an_image_that_does_not_decode_fails_in_two_lines(tmp_path):
  broken = bytearray(fake_archives.encode_image(np.random.default_rng(1), 16, 16))
  start_of_frame = broken.find(b'\xff\xc0')
  broken[start_of_frame + 12] = 3  # Its first component's quantization table: undefined.
  broken = bytes(broken)
  assert image_fixes.fix_reason(broken) is None  # Passes the fixer's cheap checks.
  manual = tmp_path / 'manual'
  manual.mkdir()
  fake_archives.write_tar(manual / VAL_TAR, [('ILSVRC2012_val_00000002.JPEG', broken)])
  with pytest.raises(image_fixes.UndecodableImageError) as raised:
    build(manual, tmp_path / 'data', name=f'{NAME}/8x8', verify_checksums=False)
  assert two_lines(raised.value) == (
      'The image ILSVRC2012_val_00000002.JPEG could not be decoded to be'
      ' downsampled (OSError: broken data stream when reading image file).',
      'Download its archive again; the downsampled variant decodes every image,'
      ' so it cannot leave out an image it cannot read.',
  )
  assert not tfds.builder(f'{NAME}/8x8', data_dir=tmp_path / 'data').is_prepared()


def test_without_train_and_validation_archives_it_fails_naming_them(tmp_path):
  manual = manual_dir_with(tmp_path, TEST_TAR)
  with pytest.raises(split_sources.MissingArchivesError) as raised:
    build(manual, tmp_path / 'data', name=f'{NAME}/64x64', verify_checksums=False)
  assert two_lines(raised.value) == (
      f'{NAME}/64x64 is built from ILSVRC2012_img_train.tar and'
      f' ILSVRC2012_img_val.tar, and {manual} holds only ILSVRC2012_img_test.tar.',
      'Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from'
      ' https://image-net.org/download-images (free registration) into that'
      ' folder, or pass the folder that holds them as --manual_dir.',
  )


def test_validation_alone_builds_validation(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  shutil.copy(DUMMY_DIR / VAL_TAR, manual / VAL_TAR)
  builder = build(manual, tmp_path / 'data', name=f'{NAME}/8x8', verify_checksums=False)
  assert set(builder.info.splits) == {'validation'}
  assert builder.info.splits['validation'].num_examples == 10
  assert set(builder.info.metadata['archives']) == {VAL_TAR}


def test_workers_encode_with_the_resized_layout_without_importing_tfds(tmp_path):
  layout = resized_layout.ResizedLayout(
      tfds.builder(f'{NAME}/16x16', data_dir=tmp_path), ['train'], 16, ORDER
  )
  rng = np.random.default_rng(2)
  images = [fake_archives.encode_image(rng, 60, 40) for _ in range(3)]
  with worker_pool.WorkerPool(1) as pool:
    assert list(pool(functools.partial(_imports_tfds, layout), [0])) == [False]
    encoded = list(pool(functools.partial(layout.encode, label=5, file_name='x'), images))
  assert encoded == [layout.encode(image, 5, 'x') for image in images]
