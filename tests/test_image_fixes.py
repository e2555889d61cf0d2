"""Image fixes are decided by content: CMYK and non-JPEG re-encoded, the rest kept."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from imagenet2012_local.engine import image_fixes
from tests import fake_archives


def _image(**options) -> bytes:
  return fake_archives.encode_image(np.random.default_rng(0), 64, 48, **options)


@pytest.mark.parametrize(
    'options, components',
    [({}, 3), ({'mode': 'L'}, 1), ({'mode': 'CMYK'}, 4),
     ({'mode': 'CMYK', 'adobe_marker': False}, 4)],
)
def test_jpeg_header_gives_size_and_components(options, components):
  header = image_fixes.read_jpeg_header(_image(**options))
  assert (header.width, header.height, header.components) == (64, 48, components)


def test_jpeg_segments_walk_the_header_to_the_start_of_scan():
  data = _image(mode='CMYK')
  segments = list(image_fixes.jpeg_segments(data))
  markers = [segment.marker for segment in segments]
  assert segments[0] == (0xD8, 0, 2)
  assert markers[-1] == image_fixes.START_OF_SCAN
  assert 0xEE in markers and 0xC0 in markers  # Adobe's APP14, the frame.
  assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
  filled = data[:2] + b'\xff' + data[2:]  # A fill byte before a marker.
  assert [s.marker for s in image_fixes.jpeg_segments(filled)] == markers
  cut = list(image_fixes.jpeg_segments(data[: segments[2].start + 3]))
  assert cut == segments[:2]  # Stops where the header stops, without an error.
  assert list(image_fixes.jpeg_segments(b'\x89PNG\r\n\x1a\n')) == []


def test_jpeg_header_of_non_jpeg_is_none():
  assert image_fixes.read_jpeg_header(_image(image_format='PNG')) is None
  assert image_fixes.read_jpeg_header(b'<html>not found</html>') is None


@pytest.mark.parametrize('options', [{}, {'mode': 'L'}])
def test_rgb_and_grayscale_jpegs_keep_their_bytes(options):
  data = _image(**options)
  assert image_fixes.fix_image(data) == (data, None)


@pytest.mark.parametrize(
    'options, reason',
    [
        ({'mode': 'CMYK'}, '4-component (CMYK/YCCK) JPEG'),
        ({'mode': 'CMYK', 'adobe_marker': False}, '4-component (CMYK/YCCK) JPEG'),
        ({'image_format': 'PNG'}, 'PNG'),
        ({'image_format': 'PNG', 'mode': 'L'}, 'PNG'),
    ],
)
def test_cmyk_and_png_become_rgb_jpegs_with_the_same_pixels(options, reason):
  data = _image(**options)
  fixed, why = image_fixes.fix_image(data)
  assert why == reason
  assert image_fixes.read_jpeg_header(fixed).components == 3
  # TF's decoder (what training pipelines use) as the reference picture.
  before = tf.io.decode_image(data, channels=3).numpy().astype(float)
  after = tf.io.decode_jpeg(fixed, channels=3).numpy().astype(float)
  assert np.abs(before - after).mean() < 3.0


def test_other_formats_are_reencoded_too():
  out = io.BytesIO()
  PIL.Image.new('RGB', (8, 8), 'red').save(out, format='GIF')
  fixed, why = image_fixes.fix_image(out.getvalue())
  assert why == 'GIF image'
  assert image_fixes.read_jpeg_header(fixed).components == 3


def test_cut_off_jpeg_is_checked_cheaply_and_exactly():
  good = fake_archives.encode_image(np.random.default_rng(6), 48, 48)
  assert image_fixes.fix_image(good + b'\0' * 7) == (good + b'\0' * 7, None)
  assert image_fixes.fix_image(good + b'trailer') == (good + b'trailer', None)
  for cut in (good[:-2], good[: len(good) // 2]):
    with pytest.raises(image_fixes.UndecodableImageError, match='truncated'):
      image_fixes.fix_image(cut)


def test_bytes_no_decoder_reads_raise():
  with pytest.raises(image_fixes.UndecodableImageError):
    image_fixes.fix_image(b'<html>404 not found</html>')
