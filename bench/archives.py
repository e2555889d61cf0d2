"""Writes benchmark archives for an `ArchiveSpec`, once per spec.

Images are cheap to make: a small pool is encoded once, and each member gets
unique bytes by a JPEG comment segment carrying its name, so no two members
are identical (which could flatter deduplicating or caching code) while still
decoding as the same image. Pool images are realistic in size (~110 KB,
like real ImageNet), small (~21 KB, the subset-names set: all 1,000 classes in
~8 GB) or tiny (~1 KB, for the full-count set).

On disk, `<workdir>/<spec name>/` holds:
- `ILSVRC2012_img_train.tar`: one inner `<wnid>.tar` per class, holding
  `<wnid>_<n>.JPEG` for the spec's numbers n (1..count, or the subset lists'
  and others); inner tars and their members in a seeded, unsorted order, as
  in the real archive.
- `ILSVRC2012_img_val.tar`: `ILSVRC2012_val_%08d.JPEG` for 1..val, shuffled.
- `checksums.tsv`: the archives' sizes, MD5s and SHA-256s, in the format of
  `imagenet2012_local.gate.checksum_tables.write_table`.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from bench.archive_specs import ArchiveSpec
from imagenet2012_local.gate import checksum_tables
from tests.fake_archives import (
    encode_image,
    shuffled,
    write_tar,
    write_train_tar,
)

TRAIN_TAR = 'ILSVRC2012_img_train.tar'
VAL_TAR = 'ILSVRC2012_img_val.tar'
CHECKSUMS = 'checksums.tsv'
_POOL_SIZE = 64
# ImageNet photos average ~110 KB at roughly 400x350 to 500x400 pixels.
# encode_image's smooth noise compresses better than photos, so quality 98
# over these sizes is what brings the pool's mean to ~110 KB.
# Small images: the same quality at ~1/5 of the pixels, ~21 KB. Tiny ones:
# ~0.6 to ~2 KB (a JPEG's tables alone take ~0.6 KB).
# image size -> (widths, heights, JPEG quality)
_POOLS = {
    'photo': ((400, 560), (340, 440), 98),
    'small': ((180, 250), (150, 200), 98),
    'tiny': ((8, 80), (8, 64), 90),
}
_SOI = b'\xff\xd8'
_COM = b'\xff\xfe'


@dataclasses.dataclass(frozen=True)
class ArchiveSet:
  """A directory of benchmark archives and how many images they hold."""

  directory: Path
  num_images: int

  @property
  def train(self) -> Path:
    return self.directory / TRAIN_TAR

  @property
  def val(self) -> Path:
    return self.directory / VAL_TAR

  @property
  def checksums(self) -> Path:
    return self.directory / CHECKSUMS

  @property
  def num_bytes(self) -> int:
    return self.train.stat().st_size + self.val.stat().st_size


def with_comment(jpeg: bytes, comment: str) -> bytes:
  """`jpeg` with a COM segment holding `comment` right after the SOI marker."""
  if not jpeg.startswith(_SOI):
    raise ValueError('not a JPEG: no SOI marker')
  payload = comment.encode()
  # The segment length counts its own two bytes but not the marker.
  length = (len(payload) + 2).to_bytes(2, 'big')
  return _SOI + _COM + length + payload + jpeg[len(_SOI) :]


def _image_pool(seed: int, image_size: str) -> list[bytes]:
  widths, heights, quality = _POOLS[image_size]
  rng = np.random.default_rng(seed)
  return [
      encode_image(
          rng,
          int(rng.integers(*widths, endpoint=True)),
          int(rng.integers(*heights, endpoint=True)),
          quality=quality,
      )
      for _ in range(_POOL_SIZE)
  ]


def _member(pool: list[bytes], name: str) -> tuple[str, bytes]:
  # Picked by name, so a member's bytes do not depend on the writing order.
  return name, with_comment(pool[zlib.crc32(name.encode()) % len(pool)], name)


def _class_images(
    pool: list[bytes], wnid: str, numbers: Iterable[int]
) -> Iterator[tuple[str, bytes]]:
  return (_member(pool, f'{wnid}_{n}.JPEG') for n in numbers)


def ensure_archives(workdir: Path, spec: ArchiveSpec) -> ArchiveSet:
  """Returns the archive set for `spec`, writing it first if needed.

  Everything is written under a `.partial` name and renamed only once complete
  (checksum table included), so an interrupted write is never reused.
  """
  final = workdir / spec.name
  result = ArchiveSet(final, spec.num_images)
  if final.is_dir():
    print(f'Reusing archives in {final}')
    return result
  partial = final.with_name(final.name + '.partial')
  shutil.rmtree(partial, ignore_errors=True)
  partial.mkdir(parents=True)

  start = time.perf_counter()
  pool = _image_pool(spec.seed, spec.image_size)
  print(
      f'Encoded {len(pool)} pool images, mean'
      f' {np.mean([len(p) for p in pool]) / 1e3:.1f} KB.'
  )
  write_train_tar(
      partial / TRAIN_TAR,
      {
          wnid: _class_images(pool, wnid, numbers)
          for wnid, numbers in spec.train_images.items()
      },
      spec.seed,
  )
  val_names = (
      f'ILSVRC2012_val_{n:08d}.JPEG' for n in range(1, spec.val_images + 1)
  )
  write_tar(
      partial / VAL_TAR,
      (_member(pool, n) for n in shuffled(val_names, spec.seed)),
  )
  written = sum(f.stat().st_size for f in partial.iterdir())
  elapsed = time.perf_counter() - start
  print(
      f'Wrote {written / 1e9:.2f} GB in {elapsed:.1f} s'
      f' ({written / 1e6 / elapsed:.0f} MB/s).'
  )
  start = time.perf_counter()
  checksum_tables.write_table(
      partial / CHECKSUMS,
      [partial / TRAIN_TAR, partial / VAL_TAR],
      f'Benchmark archives {final.name}, written by bench/archives.py.',
  )
  print(f'Wrote {CHECKSUMS} in {time.perf_counter() - start:.1f} s.')
  partial.rename(final)
  return result
