"""The downsampled layout: TFDS `imagenet_resized`'s examples in TFDS's shard files.

Each image (already fixed by `image_fixes`) is decoded in full, converted to
RGB and squashed to size x size with Pillow's box filter, as the
downsampled-ImageNet paper's script did (Chrabaszcz, Loshchilov and Hutter,
2017; docs/variants.md); the record holds it as PNG (`png_encoding`, TFDS's
bytes for an array) and its label in `imagenet_resized`'s class order.
Shards are named, framed and published as the TFDS layout's. It imports no
TFDS: worker processes encode with it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image

from imagenet2012_local import errors
from imagenet2012_local.layouts import example_encoding
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.layouts import png_encoding
from imagenet2012_local.layouts import tfds_layout
from imagenet2012_local.variants import variant_files

if TYPE_CHECKING:
  import tensorflow_datasets as tfds

# TFDS's `imagenet_resized_labels.txt`: the wnids in that dataset's class order.
LABELS_FILE = variant_files.DATA_DIR / 'imagenet_resized' / 'imagenet_resized_labels.txt'
# The paper's filter; full decode, no draft(): docs/variants.md says why.
RESAMPLING = PIL.Image.Resampling.BOX


def label_order(sorted_wnids: Sequence[str]) -> tuple[int, ...]:
  """Entry k: the `imagenet_resized` label of the class with sorted label k."""
  resized = {wnid: label for label, wnid in enumerate(LABELS_FILE.read_text().split())}
  return tuple(resized[wnid] for wnid in sorted_wnids)


def downsampled(image: bytes, size: int, file_name: str) -> np.ndarray:
  """The size x size x 3 pixels of `image`: decoded, RGB, squashed with the
  box filter.

  Raises:
    image_fixes.UndecodableImageError: Pillow cannot decode `image` in full
      (its header and end passed the fixer's cheap checks).
  """
  try:
    with PIL.Image.open(io.BytesIO(image)) as opened:
      # `convert` copies even an RGB image (a full-size copy per image).
      rgb = opened if opened.mode == 'RGB' else opened.convert('RGB')
      return np.asarray(rgb.resize((size, size), RESAMPLING))
  except (OSError, ValueError) as e:
    raise image_fixes.UndecodableImageError(errors.two_lines(
        f'The image {file_name} could not be decoded to be downsampled'
        f' ({type(e).__name__}: {e})',
        'Download its archive again; the downsampled variant decodes every'
        ' image, so it cannot leave out an image it cannot read.',
    )) from e


def resized_features(
    image: bytes, label: int, file_name: str, size: int, order: Sequence[int]
) -> dict[str, bytes | int]:
  """The features of one `imagenet_resized` example, as TFDS's writer takes
  them: the PNG of the downsampled image, and `order[label]`."""
  return {
      'image': png_encoding.encode_rgb(downsampled(image, size, file_name)),
      'label': order[label],
  }


class ResizedLayout(tfds_layout.TfdsLayout):
  """The shard files of a TFDS build of `imagenet2012_local_resized/<size>x<size>`."""

  # A record's size is known only once its image is downsampled and encoded,
  # so shards are written from reads by offset (`in_order_writer.usable`).
  record_size = None

  def __init__(
      self,
      builder: tfds.core.GeneratorBasedBuilder,
      splits: Iterable[str],
      size: int,
      order: Sequence[int],
  ):
    """`builder`'s shards of `splits`: images of size x size, labels mapped
    by `order` (see `label_order`)."""
    super().__init__(builder, splits)
    self._size = size
    self._order = tuple(order)
    self.identity = f'{self.identity} {size}x{size}'

  def encode(self, image: bytes, label: int, file_name: str) -> bytes:
    return example_encoding.serialize_features(
        resized_features(image, label, file_name, self._size, self._order)
    )
