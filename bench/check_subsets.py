"""Checks a `--subset-names` archive set by hand: `python -m bench.check_subsets`.

The subset builder fails unless the train archive holds every image the
list names, so the set is only useful if (1) the 1 % list's names are among
the 10 % list's, (2) the spec names every listed image once and each class
`--images-per-class` times, and, given `--archives DIR`, (3) the train tar
written there holds exactly the spec's names (read from the tar headers, by
seeks: ~350,000 headers, not the 8 GB). Prints what it checked; exits 1 on
the first failure. Not a test (tests/ has none for bench's archives).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from bench import archive_specs
from bench import archives


def _check(ok: bool, what: str) -> None:
  print(f'{"ok  " if ok else "FAIL"} {what}')
  if not ok:
    sys.exit(1)


def _tar_names(train: Path) -> list[str]:
  """Every image name in the train tar's inner tars, headers only."""
  names = []
  with tarfile.open(train) as outer:
    for member in outer:
      with tarfile.open(fileobj=outer.extractfile(member)) as inner:
        names += inner.getnames()
  return names


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--images-per-class', type=int, default=350)
  parser.add_argument('--val', type=int, default=13659)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--archives', type=Path, help='a written set to read')
  args = parser.parse_args(argv)

  one, ten = (archive_specs.listed_numbers(c) for c in ('1pct', '10pct'))
  _check(
      all(set(numbers) <= set(ten[wnid]) for wnid, numbers in one.items()),
      "the 1 % list's names are all in the 10 % list",
  )
  per_class = collections.Counter(len(v) for v in ten.values())
  _check(
      len(ten) == len(one) == 1000 and set(per_class) <= {128, 129},
      f'both lists name all 1,000 classes; 10 %: {dict(per_class)} classes of'
      f' 128/129, 1 %: {sum(map(len, one.values())):,} images',
  )
  spec = archive_specs.with_subset_names(
      args.images_per_class, args.val, args.seed
  )
  names = spec.train_names()
  _check(
      len(names) == spec.num_train_images
      and all(len(n) == args.images_per_class for n in spec.train_images.values()),
      f'{spec.name}: {len(names):,} distinct train names,'
      f' {args.images_per_class} a class',
  )
  for config, listed in (('1pct', one), ('10pct', ten)):
    wanted = {f'{w}_{n}.JPEG' for w, numbers in listed.items() for n in numbers}
    _check(
        wanted <= names,
        f'{config}: all {len(wanted):,} listed images in train'
        f' ({len(wanted) / len(names):.1%} of it)',
    )
  if args.archives:
    found = _tar_names(args.archives / archives.TRAIN_TAR)
    _check(
        len(found) == len(set(found)) and set(found) == names,
        f'{args.archives / archives.TRAIN_TAR} holds exactly these'
        f' {len(found):,} images',
    )
  return 0


if __name__ == '__main__':
  sys.exit(main())
