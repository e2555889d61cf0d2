"""Path helpers: cloud paths stay as they are, local ones become absolute."""

from __future__ import annotations

import os

from imagenet2012_local import paths


def test_cloud_paths_are_not_turned_into_local_ones():
  assert os.fspath(paths.absolute('gs://bucket/raw/ILSVRC2012_img_val.tar')) == (
      'gs://bucket/raw/ILSVRC2012_img_val.tar'
  )
  assert os.fspath(paths.absolute('raw/x.tar')) == os.path.abspath('raw/x.tar')
