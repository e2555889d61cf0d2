"""Images whose header declares a size no decoder should accept (none, or past
Pillow's decompression-bomb limit) are undecodable, found before any decode."""

from __future__ import annotations

import zlib

import numpy as np
import PIL.Image
import pytest

from imagenet2012_local.engine import image_fixes
from tests import fake_archives
from tests.helpers import (
    VAL_TAR,
    build,
    made_up_build_fails,
    manual_dir_holding,
    metadata,
    read_split,
    val_images,
)

_RNG_SEED = 7
_PNG_SIZE_FIELDS = slice(16, 24)  # IHDR's width and height, after its tag.
_PNG_IHDR_CRC = slice(29, 33)


def _jpeg_declaring(width: int, height: int, mode: str = 'RGB') -> bytes:
  """A small, whole JPEG (it ends with its end marker, so the cheap check
  takes it) whose start-of-frame header declares `width` x `height`."""
  data = bytearray(
      fake_archives.encode_image(np.random.default_rng(_RNG_SEED), 32, 24, mode=mode)
  )
  frame = next(
      segment
      for segment in image_fixes.jpeg_segments(bytes(data))
      if segment.marker == 0xC0
  )
  data[frame.start + 5 : frame.start + 9] = (
      height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
  )
  return bytes(data)


def _png_declaring(width: int, height: int) -> bytes:
  """A small PNG whose IHDR chunk declares `width` x `height` (CRC fixed up,
  so Pillow reads the header as valid)."""
  data = bytearray(
      fake_archives.encode_image(
          np.random.default_rng(_RNG_SEED), 32, 24, image_format='PNG'
      )
  )
  data[_PNG_SIZE_FIELDS] = width.to_bytes(4, 'big') + height.to_bytes(4, 'big')
  data[_PNG_IHDR_CRC] = zlib.crc32(data[12:29]).to_bytes(4, 'big')
  return bytes(data)


# Each kind of image that declares a size no decoder should accept, and what
# its reason says. Pillow raises past twice its limit and only warns between
# its limit and twice it: both are refused.
BOMBS = {
    'jpeg_60000x60000': (_jpeg_declaring(60000, 60000), 'declares 60000 x 60000 pixels'),
    'cmyk_jpeg_just_past_limit': (
        _jpeg_declaring(9500, 9500, mode='CMYK'),
        'declares 9500 x 9500 pixels',
    ),
    'jpeg_width_0': (_jpeg_declaring(0, 24), 'declares 0 x 24 pixels: no image'),
    'jpeg_height_0': (_jpeg_declaring(32, 0), 'declares 32 x 0 pixels: no image'),
    'png_60000x60000': (_png_declaring(60000, 60000), 'DecompressionBombError'),
    'png_just_past_limit': (_png_declaring(10000, 9000), 'DecompressionBombWarning'),
}


def test_the_limit_is_pillows_decompression_bomb_limit():
  assert image_fixes.MAX_PIXELS == PIL.Image.MAX_IMAGE_PIXELS
  image_fixes.check_declared_size(image_fixes.MAX_PIXELS, 1)
  with pytest.raises(image_fixes.UndecodableImageError, match='more than'):
    image_fixes.check_declared_size(image_fixes.MAX_PIXELS + 1, 1)


@pytest.mark.parametrize('kind', BOMBS)
def test_a_declared_size_past_the_limit_or_empty_is_undecodable(kind):
  data, reason = BOMBS[kind]
  with pytest.raises(image_fixes.UndecodableImageError, match=reason):
    image_fixes.fix_image(data)


def test_the_limit_holds_where_pillows_is_lifted(monkeypatch):
  monkeypatch.setattr(PIL.Image, 'MAX_IMAGE_PIXELS', None)  # As training code does.
  for data in (_png_declaring(60000, 60000), _png_declaring(10000, 9000)):
    with pytest.raises(image_fixes.UndecodableImageError, match='more than the 89,478,485'):
      image_fixes.fix_image(data)


def test_sizes_up_to_the_limit_are_decoded_as_before():
  data = _jpeg_declaring(32, 24)  # Its true size.
  assert image_fixes.fix_image(data) == (data, None)
  fixed, why = image_fixes.fix_image(_png_declaring(32, 24))
  assert why == 'PNG' and image_fixes.read_jpeg_header(fixed).width == 32


def _val_archive_with(bombs: dict[str, bytes]) -> tuple[dict[str, bytes], bytes]:
  """Four good validation images, then `bombs` under the next file names."""
  images = dict(val_images(4))
  for i, data in enumerate(bombs.values(), start=len(images) + 1):
    images[f'ILSVRC2012_val_{i:08d}.JPEG'] = data
  return images, fake_archives.tar_bytes(images.items())


@pytest.mark.parametrize('kind', ['jpeg_60000x60000', 'jpeg_height_0', 'png_60000x60000'])
def test_a_build_fails_naming_the_image(tmp_path, kind):
  data, reason = BOMBS[kind]
  _, archive = _val_archive_with({kind: data})
  what, fix = made_up_build_fails(
      tmp_path, VAL_TAR, archive, image_fixes.UndecodableImageError
  )
  assert f'{VAL_TAR}: no decoder can read the image ILSVRC2012_val_00000005.JPEG' in what
  assert reason in what
  assert 'skip_bad_images=True' in fix


def test_skip_bad_images_leaves_them_out_and_lists_them(tmp_path):
  images, archive = _val_archive_with({kind: data for kind, (data, _) in BOMBS.items()})
  manual = manual_dir_holding(tmp_path, VAL_TAR, archive)
  build(manual, tmp_path / 'data', verify_checksums=False, skip_bad_images=True)
  skipped = metadata(tmp_path / 'data')['skipped_images']['validation']
  bomb_names = list(images)[4:]
  assert set(skipped) == set(bomb_names)
  for name, (_, reason) in zip(bomb_names, BOMBS.values()):
    assert reason in skipped[name]
  stored = read_split(tmp_path / 'data', 'validation')
  assert {name: image for name, (_, image) in stored.items()} == {
      name: images[name] for name in list(images)[:4]
  }
