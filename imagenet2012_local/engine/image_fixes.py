"""Image fixes decided by content, not by a list of names.

ImageNet ships a few CMYK JPEGs and a PNG named `.JPEG`; decoders in training
pipelines expect RGB (or grayscale) JPEG. Any JPEG with 4 components (CMYK or
YCCK, with or without the Adobe marker) and anything that is not a JPEG is
re-encoded to an RGB JPEG; every other image keeps its exact original bytes.
Deciding needs only the JPEG header, so the common case costs microseconds.

Images no decoder can read fail the build, or with `skip_bad_images` are left
out and recorded. Decoding all 1.3 M images to find them would take hours, so
what is checked is cheap: a JPEG whose start-of-frame header parses and whose
data ends with the end-of-image marker (FF D9, after which only zero bytes may
follow) is taken as readable; any other JPEG must decode fully with Pillow
(a cut-off file does not); anything else is decoded anyway to be re-encoded.
An image whose header declares no pixels, or more than `MAX_PIXELS`, is
undecodable too, before anything is decoded: a 60000 x 60000 JPEG of a few
KB passes the cheap checks, and decoding it in training takes 10.8 GB.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from collections.abc import Callable, Iterator
from typing import NamedTuple

import PIL.Image

from imagenet2012_local import errors
from imagenet2012_local import settings
from imagenet2012_local.sources import source

# Like upstream TFDS's fixes (TF's encoder at quality 100), so fixed images
# carry the same pixels as upstream's within JPEG rounding.
REENCODE_QUALITY = 100

_JPEG_START = b'\xff\xd8'
_JPEG_END = b'\xff\xd9'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
START_OF_SCAN = 0xDA
# Start-of-frame markers: every one except DHT (C4), JPG (C8) and DAC (CC).
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MARKERS_WITHOUT_LENGTH = frozenset(range(0xD0, 0xDA)) | {0x01}
# Pillow's default decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS): a
# 3-channel image of 256 MiB once decoded. Fixed here rather than read from
# Pillow, so that a process that lifts Pillow's limit (training code often
# sets it to None) builds the same dataset. ImageNet's images average about
# 400 x 350 pixels, its largest far below this.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


class UndecodableImageError(errors.Imagenet2012LocalError, ValueError):
  """Bytes that no decoder here can read as an image."""


@dataclasses.dataclass(frozen=True)
class JpegHeader:
  """What the JPEG start-of-frame segment says about an image."""

  height: int
  width: int
  components: int  # 1 grayscale, 3 YCbCr/RGB, 4 CMYK/YCCK.


class JpegSegment(NamedTuple):
  """One marker segment of a JPEG header: data[start:end], marker byte first."""

  marker: int  # The byte after 0xFF: D8 start of image, DA start of scan...
  start: int  # Of its 0xFF byte.
  end: int  # Just past it: its length field counts from start + 2.


def jpeg_segments(data: bytes) -> Iterator[JpegSegment]:
  """The marker segments of a JPEG header, from SOI up to and including SOS.

  The one walker of JPEG markers here. It stops, without an error, where the
  bytes stop looking like a JPEG header (no SOI, a byte that is not a marker,
  too few bytes left for a length field): a header is complete when its last
  segment is START_OF_SCAN, after which entropy-coded data follows.
  """
  if not data.startswith(_JPEG_START):
    return
  yield JpegSegment(_JPEG_START[1], 0, len(_JPEG_START))
  pos = len(_JPEG_START)
  end_of_data = len(data)
  while pos + 4 <= end_of_data:
    if data[pos] != 0xFF:
      return
    marker = data[pos + 1]
    if marker == 0xFF:  # Fill byte before a marker.
      pos += 1
      continue
    if marker in _MARKERS_WITHOUT_LENGTH:
      yield JpegSegment(marker, pos, pos + 2)
      pos += 2
      continue
    end = pos + 2 + (data[pos + 2] << 8 | data[pos + 3])
    yield JpegSegment(marker, pos, end)
    if marker == START_OF_SCAN:
      return
    pos = end


def read_jpeg_header(data: bytes) -> JpegHeader | None:
  """Parses the start-of-frame segment; None when `data` is not a JPEG we can parse."""
  for marker, pos, _ in jpeg_segments(data):
    if marker in _START_OF_FRAME:
      if pos + 10 > len(data):
        return None
      return JpegHeader(
          height=data[pos + 5] << 8 | data[pos + 6],
          width=data[pos + 7] << 8 | data[pos + 8],
          components=data[pos + 9],
      )
    if marker == START_OF_SCAN:  # Scan before any frame header: malformed.
      return None
  return None


def fix_reason(data: bytes) -> str | None:
  """Why `data` must be re-encoded, or None when its bytes are kept as they are."""
  header = read_jpeg_header(data)
  if header is not None:
    check_declared_size(header.width, header.height)
    if header.components == 4:
      return '4-component (CMYK/YCCK) JPEG'
    if not data.rstrip(b'\0').endswith(_JPEG_END):
      _decode(data)  # No end marker: only a full decode tells.
    return None
  if data.startswith(_PNG_MAGIC):
    return 'PNG'
  return f'{_decoded_format(data)} image'


def check_declared_size(width: int, height: int) -> None:
  """Refuses a size from an image's header that no decoder should accept.

  Raises:
    UndecodableImageError: no pixels (a JPEG of height 0 leaves it to a DNL
      marker, which libjpeg, TensorFlow's decoder, does not read), or more
      than MAX_PIXELS.
  """
  if not width or not height:
    raise UndecodableImageError(f'declares {width} x {height} pixels: no image')
  if width * height > MAX_PIXELS:
    raise UndecodableImageError(
        f'declares {width} x {height} pixels, more than the {MAX_PIXELS:,} a'
        " decoder should accept (Pillow's decompression-bomb limit)"
    )


def to_rgb_jpeg(data: bytes) -> bytes:
  """Decodes any image Pillow reads and re-encodes it as an RGB JPEG."""
  image = _decode(data)
  if image.mode == 'CMYK' and 'adobe' not in image.info:
    # Pillow reads every CMYK JPEG as Photoshop's inverted CMYK; without
    # the Adobe marker the values are plain (as libjpeg and TF read them).
    image = image.point(lambda value: 255 - value)
  rgb = image.convert('RGB')
  out = io.BytesIO()
  rgb.save(out, format='JPEG', quality=REENCODE_QUALITY)
  return out.getvalue()


def fix_image(data: bytes) -> tuple[bytes, str | None]:
  """The bytes to store for an image, and the reason when they were re-encoded.

  Raises:
    UndecodableImageError: no decoder can read `data` (see the module docstring).
  """
  reason = fix_reason(data)
  return (data, None) if reason is None else (to_rgb_jpeg(data), reason)


class ImageFixer:
  """`fix_image` for the images of one archive, keeping what it fixed and skipped.

  Attributes:
    fixed: {file name: why it was re-encoded}.
    skipped: {file name: why no decoder reads it}, with `skip_bad_images`.
  """

  def __init__(
      self,
      where: str,
      skip_bad_images: bool,
      how_to_replace: Callable[[str], str] | None = None,
  ):
    """Fixes the images of the archive or folder `where`; an undecodable one
    fails in two lines, the second starting with `how_to_replace(file name)`
    (default: download the archive again)."""
    self._where = where
    self._how_to_replace = how_to_replace or (
        lambda _: f'Download {os.path.basename(where)} again'
    )
    self._skip_bad_images = skip_bad_images
    self.fixed: dict[str, str] = {}
    self.skipped: dict[str, str] = {}

  @classmethod
  def of(cls, reader: source.ImageReader, skip_bad_images: bool) -> ImageFixer:
    """The fixer of the images `reader` reads."""
    return cls(reader.name, skip_bad_images, reader.how_to_replace)

  def __call__(self, file_name: str, data: bytes) -> bytes | None:
    """The bytes to store for the image, or None when it is skipped.

    Raises:
      UndecodableImageError: no decoder reads it and skipping is off.
    """
    try:
      data, reason = fix_image(data)
    except UndecodableImageError as e:
      if not self._skip_bad_images:
        raise UndecodableImageError(errors.two_lines(
            f'{self._where}: no decoder can read the image {file_name} ({e})',
            f'{self._how_to_replace(file_name)}, or leave such'
            f' images out with {settings.SKIP_BAD_IMAGES_ENV_VAR}=1 (or'
            " tfds.builder('imagenet2012_local', skip_bad_images=True)); they"
            " are listed in the dataset's metadata, skipped_images.",
        )) from e
      self.skipped[file_name] = str(e)
      return None
    if reason:
      self.fixed[file_name] = reason
    return data


def _decode(data: bytes) -> PIL.Image.Image:
  """The fully decoded image; UndecodableImageError if Pillow cannot."""
  with _opened(data) as image:
    try:
      image.load()
    except (OSError, ValueError) as e:
      raise _undecodable(e) from e
    return image


def _decoded_format(data: bytes) -> str:
  with _opened(data) as image:
    return image.format or 'unknown-format'


def _opened(data: bytes) -> PIL.Image.Image:
  """`data` opened by Pillow: its header read, nothing decoded yet.

  Raises:
    UndecodableImageError: Pillow does not read it, or its header declares a
      size `check_declared_size` refuses.
  """
  with warnings.catch_warnings():
    # Pillow only warns between its limit and twice it: an error here.
    warnings.simplefilter('error', PIL.Image.DecompressionBombWarning)
    try:
      image = PIL.Image.open(io.BytesIO(data))
    except (
        OSError,
        ValueError,
        PIL.Image.DecompressionBombError,
        PIL.Image.DecompressionBombWarning,
    ) as e:
      raise _undecodable(e) from e
  try:
    check_declared_size(*image.size)  # Also where Pillow's limit is lifted.
  except UndecodableImageError:
    image.close()
    raise
  return image


def _undecodable(e: Exception) -> UndecodableImageError:
  """The error with a reason that is the same on every build (it goes into the
  metadata; Pillow's message for an unknown format holds an object address)."""
  if isinstance(e, PIL.UnidentifiedImageError):
    return UndecodableImageError('not in any image format Pillow reads')
  return UndecodableImageError(f'{type(e).__name__}: {e}')
