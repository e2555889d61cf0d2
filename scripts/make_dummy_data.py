"""Writes the small fake ImageNet archives in dummy_data/ and their checksums.

Deterministic: every run writes the same bytes. Run from the repo root with the
package importable, e.g. `PYTHONPATH=. python scripts/make_dummy_data.py`.

The odd images carry the file names that upstream TFDS special-cases (CMYK and
PNG-in-disguise), so results can be compared with upstream's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from imagenet2012_local.gate import checksum_tables
from tests.fake_archives import (
    Synset,
    encode_image,
    shuffled,
    write_devkit,
    write_tar,
    write_train_tar,
)

_ROOT = Path(__file__).resolve().parent.parent
_OUT_DIR = _ROOT / 'dummy_data'
_TABLE = _ROOT / 'checksums' / 'dummy_data.tsv'
_SEED = 2012
_NUM_VAL = 10
_NUM_TEST = 5

_TRAIN_WNIDS = ['n01440764', 'n01739381', 'n02105855', 'n04596742', 'n15075141']
# encode_image keyword arguments for the images that are not RGB JPEGs.
_SPECIAL = {
    'n01440764_18.JPEG': {'mode': 'L'},
    'n01739381_1309.JPEG': {'mode': 'CMYK'},
    'n02105855_2933.JPEG': {'image_format': 'PNG'},
    'n04596742_4225.JPEG': {'mode': 'CMYK', 'adobe_marker': False},
    'ILSVRC2012_val_00000003.JPEG': {'mode': 'CMYK'},
    'ILSVRC2012_val_00000007.JPEG': {'mode': 'L'},
    'ILSVRC2012_test_00000002.JPEG': {'image_format': 'PNG'},
}
# Names for the train wnids and for those of val images 1..10.
_WORDS = {
    'n01440764': 'tench, Tinca tinca',
    'n01735189': 'garter snake, grass snake',
    'n01739381': 'vine snake',
    'n01751748': 'sea snake',
    'n02105855': 'Shetland sheepdog, Shetland sheep dog, Shetland',
    'n02328150': 'Angora, Angora rabbit',
    'n02346627': 'porcupine, hedgehog',
    'n02776631': 'bakery, bakeshop, bakehouse',
    'n03125729': 'cradle',
    'n03794056': 'mousetrap',
    'n04263257': 'soup bowl',
    'n04596742': 'wok',
    'n09193705': 'alp',
    'n15075141': 'toilet tissue, toilet paper, bathroom tissue',
}
# meta.mat also lists non-leaf synsets, after the 1000 classes.
_NON_LEAVES = [('n00001740', 'entity', 3), ('n00002137', 'abstraction', 2)]


def _image(rng: np.random.Generator, name: str) -> tuple[str, bytes]:
  width, height = rng.integers(40, 81, size=2)
  options = _SPECIAL.get(name, {})
  return name, encode_image(rng, int(width), int(height), **options)


def _train_images(
    rng: np.random.Generator,
) -> dict[str, list[tuple[str, bytes]]]:
  """4 to 6 images per class, numbered like the real ones, specials included."""
  images = {}
  for wnid in _TRAIN_WNIDS:
    names = {n for n in _SPECIAL if n.startswith(f'{wnid}_')}
    count = rng.integers(4, 7)
    while len(names) < count:
      names.add(f'{wnid}_{rng.integers(1, 15000)}.JPEG')
    images[wnid] = [_image(rng, n) for n in sorted(names)]
  return images


def _synsets(val_wnids: list[str]) -> list[Synset]:
  """Leaves get shuffled IDs 1..k, so ID order is not wnid order."""
  leaves = sorted(set(val_wnids) | set(_TRAIN_WNIDS))
  ids = shuffled(range(1, len(leaves) + 1), _SEED)
  synsets = [Synset(i, wnid, _WORDS[wnid]) for i, wnid in zip(ids, leaves)]
  synsets += [
      Synset(len(leaves) + 1 + i, wnid, words, children)
      for i, (wnid, words, children) in enumerate(_NON_LEAVES)
  ]
  return sorted(synsets, key=lambda s: s.ilsvrc2012_id)


def main() -> None:
  rng = np.random.default_rng(_SEED)
  _OUT_DIR.mkdir(exist_ok=True)
  train = _OUT_DIR / 'ILSVRC2012_img_train.tar'
  val = _OUT_DIR / 'ILSVRC2012_img_val.tar'
  test = _OUT_DIR / 'ILSVRC2012_img_test.tar'
  devkit = _OUT_DIR / 'ILSVRC2012_devkit_t12.tar.gz'

  write_train_tar(train, _train_images(rng), _SEED)
  val_names = [f'ILSVRC2012_val_{i:08d}.JPEG' for i in range(1, _NUM_VAL + 1)]
  write_tar(val, [_image(rng, n) for n in shuffled(val_names, _SEED)])
  test_names = [
      f'ILSVRC2012_test_{i:08d}.JPEG' for i in range(1, _NUM_TEST + 1)
  ]
  write_tar(test, [_image(rng, n) for n in shuffled(test_names, _SEED)])

  # The val labels must agree with the ones TFDS ships for imagenet2012.
  labels_file = tfds.core.tfds_path(
      'datasets/imagenet2012/validation_labels.txt'
  )
  val_wnids = labels_file.read_text().splitlines()[:_NUM_VAL]
  synsets = _synsets(val_wnids)
  id_by_wnid = {s.wnid: s.ilsvrc2012_id for s in synsets}
  write_devkit(devkit, synsets, [id_by_wnid[w] for w in val_wnids])

  checksum_tables.write_table(
      _TABLE,
      [train, val, test, devkit],
      'The bundled dummy archives in dummy_data/, written by'
      ' scripts/make_dummy_data.py.',
  )


if __name__ == '__main__':
  main()
