"""Helpers for the tests: build small archives, read builds back with tfds.load."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import tensorflow_datasets as tfds

import imagenet2012_local  # noqa: F401  (registers the builder)

DUMMY_DIR = Path(__file__).resolve().parent.parent / 'dummy_data'
TRAIN_TAR = 'ILSVRC2012_img_train.tar'
VAL_TAR = 'ILSVRC2012_img_val.tar'
TEST_TAR = 'ILSVRC2012_img_test.tar'
DEVKIT = 'ILSVRC2012_devkit_t12.tar.gz'


def build(manual_dir: Path, data_dir: Path, name: str = 'imagenet2012_local', **kwargs):
  """Builds `name` from the archives in `manual_dir`; returns the builder."""
  builder = tfds.builder(name, data_dir=data_dir, **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  return builder


def read_split(data_dir: Path, split: str, name: str = 'imagenet2012_local'):
  """{file_name: (label, stored image bytes)} of a built split, via tfds.load."""
  ds = tfds.load(
      name,
      split=split,
      data_dir=data_dir,
      decoders={'image': tfds.decode.SkipDecoding()},
  )
  return {
      ex['file_name'].decode(): (int(ex['label']), ex['image'])
      for ex in tfds.as_numpy(ds)
  }


def tar_images(path: Path) -> dict[str, tuple[str | None, bytes]]:
  """{file_name: (inner tar wnid or None, bytes)} read with plain tarfile."""
  images = {}
  with tarfile.open(path) as tar:
    for member in tar.getmembers():
      data = tar.extractfile(member).read()
      if path.name == TRAIN_TAR:
        with tarfile.open(fileobj=io.BytesIO(data)) as inner:
          for image in inner.getmembers():
            wnid = member.name.removesuffix('.tar')
            images[image.name] = (wnid, inner.extractfile(image).read())
      else:
        images[member.name] = (None, data)
  return images


def manual_dir_with(tmp_path: Path, *names: str) -> Path:
  """A manual dir holding copies of the named dummy archives."""
  manual = tmp_path / 'manual'
  manual.mkdir()
  for name in names:
    shutil.copy(DUMMY_DIR / name, manual / name)
  return manual

