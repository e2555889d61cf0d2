"""RGB images as PNG, byte for byte as TensorFlow's `tf.io.encode_png` writes them.

TFDS encodes an `Image` feature given as an array with `tf.io.encode_png`:
libpng at zlib's default level and memory level 9, every row filtered with
the filter whose bytes, read as signed, sum smallest in absolute value (the
first such of None, Sub, Up, Average, Paeth), the zlib window shrunk to the
image and its header rewritten to claim the smallest window that holds it,
IDAT chunks of 8 KiB. The same is done here with numpy and Python's zlib, so
that worker processes write TFDS's bytes without importing TensorFlow;
tests compare the two on many images.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_RGB_8_BIT = struct.pack('>BBBBB', 8, 2, 0, 0, 0)  # depth, colour type, methods.
_LEVEL = zlib.Z_DEFAULT_COMPRESSION  # TF's default `compression=-1`.
_MEMORY_LEVEL = 9  # TF sets MAX_MEM_LEVEL.
_MAX_WINDOW_BITS = 15
_MIN_ZLIB_WINDOW_BITS = 9  # zlib refuses 8; libpng asks for 9 and rewrites the header.
# libpng shrinks the window only for image data of at most 16 KiB; a window
# holds the data and deflate's 262-byte look-ahead.
_SHRINK_UP_TO = 16384
_LOOK_AHEAD = 262
_IDAT_BYTES = 8192  # libpng's PNG_ZBUF_SIZE: one IDAT chunk per buffer.
# A filtered byte's cost in libpng's choice: its absolute value read as signed.
_SIGNED_SIZE = np.array([min(value, 256 - value) for value in range(256)], np.int32)


def encode_rgb(pixels: np.ndarray) -> bytes:
  """The PNG of a height x width x 3 uint8 array, as `tf.io.encode_png`'s."""
  height, width, _ = pixels.shape
  data = _filtered_rows(pixels).tobytes()
  compressed = _compressed(data)
  header = struct.pack('>II', width, height) + _RGB_8_BIT
  return b''.join([
      _SIGNATURE,
      _chunk(b'IHDR', header),
      *(
          _chunk(b'IDAT', compressed[start:start + _IDAT_BYTES])
          for start in range(0, len(compressed), _IDAT_BYTES)
      ),
      _chunk(b'IEND', b''),
  ])


def _filtered_rows(pixels: np.ndarray) -> np.ndarray:
  """Each row as libpng filters it: its filter type byte, then its bytes.

  Every filter reads the unfiltered rows, so all rows are filtered at once,
  from views of one zero-padded copy (the row above the first, the pixel
  left of the first, are zeros).
  """
  height, width, channels = pixels.shape
  row_bytes = width * channels
  padded = np.zeros((height + 1, channels + row_bytes), np.int16)
  padded[1:, channels:] = pixels.reshape(height, row_bytes)
  raw = padded[1:, channels:]
  left, up, up_left = padded[1:, :-channels], padded[:-1, channels:], padded[:-1, :-channels]
  # Paeth's distances from its guess, left + up - up_left, to each neighbour.
  to_left, to_up = np.abs(up - up_left), np.abs(left - up_left)
  to_up_left = np.abs(left + up - 2 * up_left)
  paeth = np.where(
      (to_left <= to_up) & (to_left <= to_up_left),
      left,
      np.where(to_up <= to_up_left, up, up_left),
  )
  # Filter types 0 to 4: None, Sub, Up, Average, Paeth; bytes wrap modulo 256.
  predictions = np.stack([np.zeros_like(raw), left, up, (left + up) >> 1, paeth])
  candidates = (raw - predictions).astype(np.uint8)
  costs = _SIGNED_SIZE[candidates].sum(axis=2)
  chosen = costs.argmin(axis=0)  # The first of equal costs, as libpng.
  rows = np.empty((height, 1 + row_bytes), np.uint8)
  rows[:, 0] = chosen
  rows[:, 1:] = candidates[chosen, np.arange(height)]
  return rows


def _compressed(data: bytes) -> bytes:
  """`data` deflated as libpng does for a PNG's image data."""
  window_bits = _MAX_WINDOW_BITS
  if len(data) <= _SHRINK_UP_TO:
    half_window = 1 << (window_bits - 1)
    while len(data) + _LOOK_AHEAD <= half_window:
      half_window >>= 1
      window_bits -= 1
  compressor = zlib.compressobj(
      _LEVEL,
      zlib.DEFLATED,
      max(window_bits, _MIN_ZLIB_WINDOW_BITS),
      _MEMORY_LEVEL,
      zlib.Z_FILTERED,  # libpng's strategy for filtered rows.
  )
  compressed = bytearray(compressor.compress(data) + compressor.flush())
  if len(data) <= _SHRINK_UP_TO:
    _claim_smallest_window(compressed, len(data))
  return bytes(compressed)


def _claim_smallest_window(stream: bytearray, size: int) -> None:
  """Rewrites a zlib header to claim the smallest window of at least `size`
  bytes (libpng's `optimize_cmf`), with its check bits recomputed."""
  window_code = stream[0] >> 4  # The window is 2 ** (window_code + 8) bytes.
  half_window = 1 << (window_code + 7)
  if size > half_window:
    return
  while True:
    half_window >>= 1
    window_code -= 1
    if window_code == 0 or size > half_window:
      break
  stream[0] = (stream[0] & 0x0F) | (window_code << 4)
  flags = stream[1] & 0xE0
  stream[1] = flags + 0x1F - ((stream[0] << 8) + flags) % 0x1F


def _chunk(kind: bytes, data: bytes) -> bytes:
  return b''.join([
      struct.pack('>I', len(data)),
      kind,
      data,
      struct.pack('>I', zlib.crc32(kind + data)),
  ])
