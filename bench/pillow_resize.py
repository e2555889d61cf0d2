"""The downsampled variant's baseline: Pillow's own work on the same images.

`python bench/pillow_resize.py SIZE [--png] TRAIN_TAR VAL_TAR` reads the
archives once, in order, with Python's tarfile (the train archive's inner
`<wnid>.tar`s opened in memory, ~40 MB at most), and for every JPEG does
what `imagenet2012_local_resized` does to it at the least: a full decode
(no `draft()`), RGB, and `resize((SIZE, SIZE), BOX)`; with `--png`, also
Pillow's own PNG encode of the result (the variant stores PNG). Nothing is
written. Prints the image count and seconds. Standard library and Pillow
only: what a one-core script that downsamples ImageNet would do.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence

import PIL.Image


def _jpegs(tar: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
  """(name, bytes) of the tar's members, read in order; inner tars opened."""
  for member in tar:
    if not member.isfile():
      continue
    data = tar.extractfile(member).read()
    if member.name.endswith('.tar'):
      with tarfile.open(fileobj=io.BytesIO(data)) as inner:
        yield from _jpegs(inner)
    else:
      yield member.name, data


def downsample(data: bytes, size: int, png: bool) -> int:
  """Decodes `data` in full and box-resizes it; returns the bytes made."""
  with PIL.Image.open(io.BytesIO(data)) as image:
    small = image.convert('RGB').resize((size, size), PIL.Image.Resampling.BOX)
  if not png:
    return small.width * small.height * 3
  out = io.BytesIO()
  small.save(out, format='PNG')
  return out.tell()


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('size', type=int)
  parser.add_argument('archives', nargs='+')
  parser.add_argument('--png', action='store_true')
  args = parser.parse_args(argv)
  start = time.perf_counter()
  count = made = 0
  for path in args.archives:
    # Streamed ('r|'): one sequential read, no seeks back to headers.
    with tarfile.open(path, mode='r|') as tar:
      for _, data in _jpegs(tar):
        made += downsample(data, args.size, args.png)
        count += 1
  seconds = time.perf_counter() - start
  print(
      f'{count} images in {seconds:.1f} s: {count / seconds:.0f} images/s;'
      f' {made / 1e6:.1f} MB made'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
