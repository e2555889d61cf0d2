"""The ReaL layout: TFDS `imagenet2012_real`'s examples in TFDS's shard files.

Each validation image's record holds `image`, `original_label` (the label of
upstream `imagenet2012`), `real_label` (its ReaL labels, a list that may be
empty) and `file_name`, serialized by `example_encoding` exactly as TFDS
would. Shards are named, framed and published as the TFDS layout's. It
imports no TFDS: worker processes encode with it.
"""

from __future__ import annotations

from imagenet2012_local.layouts import example_encoding
from imagenet2012_local.layouts import tfds_layout
from imagenet2012_local.variants import variant_files


def real_features(image: bytes, label: int, file_name: str) -> dict[str, object]:
  """The features of one `imagenet2012_real` example, as TFDS's writer takes them."""
  return {
      'image': image,
      'original_label': label,
      'real_label': variant_files.real_labels(file_name),
      'file_name': file_name,
  }


class RealLayout(tfds_layout.TfdsLayout):
  """The shard files of a TFDS build of `imagenet2012_local_real`."""

  def features(
      self, image: bytes | example_encoding.ByteCount, label: int, file_name: str
  ) -> dict[str, object]:
    features = real_features(image, label, file_name)
    return {**features, 'file_name': file_name.encode()}
