"""Writes archives shaped like the ImageNet 2012 ones, filled with fake images.

Used by scripts/make_dummy_data.py, by tests that need broken or unusual
archives, and by benchmarks that write gigabytes: tars are written one member at
a time, so only one member (at most one inner train tar) is ever in memory.
Everything is deterministic: same inputs, same bytes. It lives with the tests,
not in the installed package: building a dataset never needs it.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import os
import random
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import BinaryIO, TypeVar

import numpy as np
import scipy.io
from PIL import Image

from imagenet2012_local.engine import image_fixes

# 2012-05-01, about when the ILSVRC2012 archives were made.
_MTIME = 1335830400
# Noise is drawn at 1/_SMOOTHING of the size and upscaled, so neighbouring
# pixels correlate and the JPEG size is closer to a photo's than to noise's.
_SMOOTHING = 8
_CHANNELS = {'L': 1, 'RGB': 3, 'CMYK': 4}
# A MAT-file starts with 116 bytes of text; savemat puts the time and OS there.
_MAT_HEADER_LEN = 116
_MAT_HEADER = b'MATLAB 5.0 MAT-file, written by imagenet2012_local'
# The JPEG marker of Adobe's segment (libjpeg writes it in CMYK JPEGs).
_APP14 = 0xEE

_T = TypeVar('_T')


@dataclasses.dataclass(frozen=True)
class Synset:
  """One entry of the devkit's meta.mat `synsets` array."""

  ilsvrc2012_id: int
  wnid: str
  words: str
  num_children: int = 0


def encode_image(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    mode: str = 'RGB',
    image_format: str = 'JPEG',
    quality: int = 90,
    adobe_marker: bool = True,
) -> bytes:
  """Encodes a random, smooth image.

  Args:
    rng: Source of the pixel values.
    width: Width in pixels.
    height: Height in pixels.
    mode: PIL mode: 'RGB', 'L' or 'CMYK' (CMYK only as JPEG).
    image_format: 'JPEG' or 'PNG'.
    quality: JPEG quality; ignored for PNG.
    adobe_marker: For a CMYK JPEG, False drops the APP14 "Adobe" segment that
      libjpeg writes, leaving a 4-component JPEG without it (as some ImageNet
      files are). Ignored otherwise.

  Returns:
    The encoded file's bytes.
  """
  small = (math.ceil(width / _SMOOTHING), math.ceil(height / _SMOOTHING))
  noise = rng.integers(
      0, 256, size=(small[1], small[0], _CHANNELS[mode]), dtype=np.uint8
  )
  image = Image.frombytes(mode, small, noise.tobytes()).resize(
      (width, height), Image.Resampling.BICUBIC
  )
  out = io.BytesIO()
  if image_format == 'JPEG':
    image.save(out, 'JPEG', quality=quality)
  else:
    image.save(out, image_format)
  data = out.getvalue()
  if mode == 'CMYK' and image_format == 'JPEG' and not adobe_marker:
    data = _strip_adobe_marker(data)
  return data


def _strip_adobe_marker(data: bytes) -> bytes:
  """Drops APP14 segments; checks the result is still a 4-component JPEG."""
  for segment in reversed(_header_segments(data)):
    if segment.marker == _APP14:
      data = data[: segment.start] + data[segment.end :]
  header = image_fixes.read_jpeg_header(data)
  markers = [segment.marker for segment in _header_segments(data)]
  if _APP14 in markers or header is None or header.components != 4:
    raise AssertionError('stripping APP14 did not give a 4-component JPEG')
  return data


def _header_segments(data: bytes) -> list[image_fixes.JpegSegment]:
  """The segments of a whole JPEG header (through the start of scan)."""
  segments = list(image_fixes.jpeg_segments(data))
  if not segments or segments[-1].marker != image_fixes.START_OF_SCAN:
    raise ValueError('not a JPEG with a whole header')
  return segments


def shuffled(items: Iterable[_T], seed: int) -> list[_T]:
  """Returns `items` in a deterministic pseudo-random order.

  Real ImageNet tars do not store their members sorted; callers use this to
  order members the same way on every run.
  """
  result = list(items)
  random.Random(seed).shuffle(result)
  return result


def _write_members(
    fileobj: BinaryIO, members: Iterable[tuple[str, bytes]]
) -> None:
  """Writes a GNU tar with fixed metadata, one member at a time."""
  with tarfile.open(
      fileobj=fileobj, mode='w', format=tarfile.GNU_FORMAT
  ) as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      info.mtime = _MTIME
      info.mode = 0o644
      info.uid = info.gid = 0
      info.uname = info.gname = ''
      tar.addfile(info, io.BytesIO(data))


def write_tar(
    path: str | os.PathLike[str], members: Iterable[tuple[str, bytes]]
) -> None:
  """Writes an uncompressed tar of (name, bytes) members, in the given order."""
  with open(path, 'wb') as f:
    _write_members(f, members)


def tar_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
  """Like `write_tar`, but returns the tar's bytes."""
  out = io.BytesIO()
  _write_members(out, members)
  return out.getvalue()


def write_train_tar(
    path: str | os.PathLike[str],
    images_by_wnid: Mapping[str, Iterable[tuple[str, bytes]]],
    seed: int,
) -> None:
  """Writes ILSVRC2012_img_train.tar: one inner `<wnid>.tar` per class.

  Args:
    path: Where to write the outer tar.
    images_by_wnid: For each wnid, its (`<wnid>_<n>.JPEG`, bytes) images. Values
      may be lazy; each is read only when its inner tar is written.
    seed: Orders the inner tars and the images in each, unsorted as in the real
      archive.
  """
  order = shuffled(images_by_wnid, seed)

  def inner_tars() -> Iterator[tuple[str, bytes]]:
    for i, wnid in enumerate(order):
      images = shuffled(images_by_wnid[wnid], seed + 1 + i)
      yield f'{wnid}.tar', tar_bytes(images)

  write_tar(path, inner_tars())


def write_devkit(
    path: str | os.PathLike[str],
    synsets: Sequence[Synset],
    val_ground_truth: Sequence[int],
) -> None:
  """Writes ILSVRC2012_devkit_t12.tar.gz with meta.mat and the val labels.

  Args:
    path: Where to write the .tar.gz.
    synsets: meta.mat's synsets, in the order given (the real file lists them
      by ILSVRC2012_ID). `children` is written empty, `num_train_images` as 0.
    val_ground_truth: ILSVRC2012_IDs; item i labels ILSVRC2012_val_%08d.JPEG
      % (i + 1).
  """
  truth = ''.join(f'{label}\n' for label in val_ground_truth).encode()
  data_dir = 'ILSVRC2012_devkit_t12/data'
  with open(path, 'wb') as f:
    # mtime=0 and an empty name keep the gzip header the same on every run.
    with gzip.GzipFile(filename='', mode='wb', fileobj=f, mtime=0) as gz:
      _write_members(
          gz,
          [
              (f'{data_dir}/meta.mat', _meta_mat(synsets)),
              (f'{data_dir}/ILSVRC2012_validation_ground_truth.txt', truth),
          ],
      )


def _meta_mat(synsets: Sequence[Synset]) -> bytes:
  """meta.mat: a (n, 1) struct array `synsets`, as in the real devkit."""
  fields = [
      'ILSVRC2012_ID',
      'WNID',
      'words',
      'gloss',
      'num_children',
      'children',
      'wordnet_height',
      'num_train_images',
  ]
  table = np.empty((len(synsets), 1), dtype=[(f, object) for f in fields])
  for i, s in enumerate(synsets):
    table[i, 0] = (
        np.array([[s.ilsvrc2012_id]], dtype=np.uint16),
        s.wnid,
        s.words,
        f'{s.words} (fake synset)',
        np.array([[s.num_children]], dtype=np.uint16),
        np.zeros((1, 0), dtype=np.uint16),
        np.array([[1 if s.num_children else 0]], dtype=np.uint16),
        np.array([[0]], dtype=np.uint16),
    )
  out = io.BytesIO()
  scipy.io.savemat(out, {'synsets': table})
  data = bytearray(out.getvalue())
  data[:_MAT_HEADER_LEN] = _MAT_HEADER.ljust(_MAT_HEADER_LEN)
  return bytes(data)
