"""The dummy archives written out as the folder layouts a manual dir may hold.

Each function extracts `dummy_data/`'s tars (the train tar's inner `<wnid>.tar`
too) into `dest`, keeping every image's bytes exactly, in one of the layouts
people already have on disk:

- `extracted_tree`: the old recipe's extracted tree, `train/<wnid>/...`,
  `validation/` (or `val/`) and `test/` flat;
- `torchvision_tree`: torchvision's class folders, `train/<wnid>/...` and
  `val/<wnid>/ILSVRC2012_val_*.JPEG`;
- `kaggle_tree`: Kaggle's imagenet-object-localization-challenge copy,
  `ILSVRC/Data/CLS-LOC/{train,val,test}` with `LOC_val_solution.csv` and
  `LOC_synset_mapping.txt` beside `ILSVRC/`.

`upload_folder` copies any such folder (or the tars) into an S3 bucket.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenet2012_local import imagenet2012_local_dataset_builder
from imagenet2012_local import settings
from imagenet2012_local.commands import cli
from imagenet2012_local.sources import labels
from tests.helpers import DEVKIT, DUMMY_DIR, NAME, TEST_TAR, TRAIN_TAR, VAL_TAR

KAGGLE_DATA = Path('ILSVRC/Data/CLS-LOC')
KAGGLE_VAL_SOLUTION = 'LOC_val_solution.csv'
KAGGLE_SYNSET_MAPPING = 'LOC_synset_mapping.txt'


def train_images(archives: Path = DUMMY_DIR) -> dict[str, list[tuple[str, bytes]]]:
  """{wnid: [(`<wnid>_<n>.JPEG`, bytes)]} of the train tar, in tar order."""
  images: dict[str, list[tuple[str, bytes]]] = {}
  with tarfile.open(archives / TRAIN_TAR) as tar:
    for member in tar.getmembers():
      wnid = member.name.removesuffix('.tar')
      inner_data = tar.extractfile(member).read()
      with tarfile.open(fileobj=io.BytesIO(inner_data)) as inner:
        images[wnid] = [
            (image.name, inner.extractfile(image).read())
            for image in inner.getmembers()
        ]
  return images


def flat_images(tar_name: str, archives: Path = DUMMY_DIR) -> list[tuple[str, bytes]]:
  """[(file name, bytes)] of the validation or test tar, in tar order."""
  with tarfile.open(archives / tar_name) as tar:
    return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def class_wnids() -> list[str]:
  """The 1,000 sorted wnids (label i is class_wnids()[i])."""
  return labels.class_names_file().read_text().split()


def validation_wnid(file_name: str) -> str:
  """The wnid of `ILSVRC2012_val_<n>.JPEG`, by its number, as the build labels it."""
  return labels.tfds_validation_labels()[file_name]


def _write(path: Path, data: bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)


def _write_train(train_dir: Path) -> None:
  for wnid, images in train_images().items():
    for name, data in images:
      _write(train_dir / wnid / name, data)


def _write_flat(folder: Path, tar_name: str) -> None:
  for name, data in flat_images(tar_name):
    _write(folder / name, data)


def extracted_tree(
    dest: Path, val_dir: str = 'validation', test: bool = True, devkit: bool = False
) -> Path:
  """The old recipe's tree: `train/<wnid>/<wnid>_<n>.JPEG`,
  `<val_dir>/ILSVRC2012_val_<n>.JPEG`, `test/ILSVRC2012_test_<n>.JPEG`
  (unless `test` is False), and the devkit beside them if `devkit`."""
  _write_train(dest / 'train')
  _write_flat(dest / val_dir, VAL_TAR)
  if test:
    _write_flat(dest / 'test', TEST_TAR)
  if devkit:
    shutil.copy(DUMMY_DIR / DEVKIT, dest / DEVKIT)
  return dest


def torchvision_tree(dest: Path, test: bool = False) -> Path:
  """torchvision's ImageFolder layout: `train/<wnid>/...` and the validation
  images sorted into `val/<wnid>/` by their label; `test/` flat if `test`."""
  _write_train(dest / 'train')
  for name, data in flat_images(VAL_TAR):
    _write(dest / 'val' / validation_wnid(name) / name, data)
  if test:
    _write_flat(dest / 'test', TEST_TAR)
  return dest


def kaggle_val_rows() -> list[tuple[str, str]]:
  """(ImageId, PredictionString) of LOC_val_solution.csv for the dummy
  validation images: the image's wnid first, then boxes (made up), in the
  real file's unsorted order (tar order here)."""
  rows = []
  for i, (name, _) in enumerate(flat_images(VAL_TAR)):
    wnid = validation_wnid(name)
    boxes = f'{wnid} {10 + i} {20 + i} {200 + i} {180 + i} {wnid} 4 5 {90 + i} {70 + i} '
    rows.append((name.removesuffix('.JPEG'), boxes))
  return rows


def write_kaggle_val_solution(dest: Path, rows: list[tuple[str, str]]) -> Path:
  """Writes LOC_val_solution.csv (header `ImageId,PredictionString`) into `dest`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['ImageId', 'PredictionString'])
  writer.writerows(rows)
  path = dest / KAGGLE_VAL_SOLUTION
  path.write_text(out.getvalue())
  return path


def kaggle_tree(dest: Path, extras: bool = False) -> Path:
  """Kaggle's imagenet-object-localization-challenge copy:
  `ILSVRC/Data/CLS-LOC/train/<wnid>/...`, `val/` and `test/` flat,
  LOC_val_solution.csv and LOC_synset_mapping.txt (all 1,000 wnids, sorted;
  placeholder words) beside `ILSVRC/`. With `extras`, also what else the real
  download holds: `ILSVRC/Annotations/CLS-LOC`, `ILSVRC/ImageSets/CLS-LOC`,
  LOC_train_solution.csv and LOC_sample_submission.csv."""
  data = dest / KAGGLE_DATA
  _write_train(data / 'train')
  _write_flat(data / 'val', VAL_TAR)
  _write_flat(data / 'test', TEST_TAR)
  write_kaggle_val_solution(dest, kaggle_val_rows())
  (dest / KAGGLE_SYNSET_MAPPING).write_text(
      ''.join(f'{wnid} class {i}, placeholder\n' for i, wnid in enumerate(class_wnids()))
  )
  if extras:
    _write_kaggle_extras(dest)
  return dest


def _write_kaggle_extras(dest: Path) -> None:
  """The rest of a real Kaggle download: box annotations (XML), image lists
  and the train solution, which the build has no use for."""
  annotations = dest / 'ILSVRC/Annotations/CLS-LOC'
  image_sets = dest / 'ILSVRC/ImageSets/CLS-LOC'
  train_ids = []
  train_rows = []
  for wnid, images in train_images().items():
    for name, _ in images:
      image_id = name.removesuffix('.JPEG')
      train_ids.append(f'{wnid}/{image_id}')
      train_rows.append(f'{image_id},{wnid} 1 2 30 40 \n')
      _write(annotations / 'train' / wnid / f'{image_id}.xml', _annotation(image_id, wnid))
  val_ids = []
  for name, _ in flat_images(VAL_TAR):
    image_id = name.removesuffix('.JPEG')
    val_ids.append(image_id)
    _write(annotations / 'val' / f'{image_id}.xml', _annotation(image_id, validation_wnid(name)))
  test_ids = [name.removesuffix('.JPEG') for name, _ in flat_images(TEST_TAR)]
  image_sets.mkdir(parents=True, exist_ok=True)
  (image_sets / 'train_cls.txt').write_text(
      ''.join(f'{image_id} {i}\n' for i, image_id in enumerate(train_ids, start=1))
  )
  (image_sets / 'val.txt').write_text(
      ''.join(f'{image_id} {i}\n' for i, image_id in enumerate(val_ids, start=1))
  )
  (image_sets / 'test.txt').write_text(
      ''.join(f'{image_id} {i}\n' for i, image_id in enumerate(test_ids, start=1))
  )
  (dest / 'LOC_train_solution.csv').write_text(
      'ImageId,PredictionString\n' + ''.join(train_rows)
  )
  (dest / 'LOC_sample_submission.csv').write_text(
      'ImageId,PredictionString\n'
      + ''.join(f'{image_id},n01440764 n01443537 n01484850 n01491361 n01494475\n'
                for image_id in test_ids)
  )


def _annotation(image_id: str, wnid: str) -> bytes:
  return (
      f'<annotation><folder>{wnid}</folder><filename>{image_id}</filename>'
      f'<object><name>{wnid}</name><bndbox><xmin>1</xmin><ymin>2</ymin>'
      '<xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>\n'
  ).encode()


def tars(dest: Path, *names: str) -> Path:
  """`dest` holding copies of the named dummy archives (all four by default)."""
  dest.mkdir(parents=True, exist_ok=True)
  for name in names or (TRAIN_TAR, VAL_TAR, TEST_TAR, DEVKIT):
    shutil.copy(DUMMY_DIR / name, dest / name)
  return dest


def files_under(folder: Path) -> Iterator[Path]:
  """Every file under `folder`, sorted."""
  return (p for p in sorted(folder.rglob('*')) if p.is_file())


def upload_folder(s3_client, bucket: str, prefix: str, folder: Path) -> list[str]:
  """Uploads every file under `folder` to `s3://<bucket>/<prefix>/<relative
  path>`; returns the keys written."""
  keys = []
  for path in files_under(folder):
    key = '/'.join(filter(None, [prefix.strip('/'), path.relative_to(folder).as_posix()]))
    s3_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    keys.append(key)
  return keys


# Builds and what they wrote.

CLASSIC_SHARDS = {'train': 4, 'validation': 2, 'test': 2}


@contextlib.contextmanager
def isolated_settings(cache_dir: Path) -> Iterator[pytest.MonkeyPatch]:
  """The settings `conftest._isolated_verification` gives each test, for a
  build made in a module- or session-scoped fixture."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(settings.CACHE_DIR_ENV_VAR, str(cache_dir))
    for env_var in (settings.VERIFY_ENV_VAR, settings.EXTRA_TABLES_ENV_VAR,
                    settings.SKIP_BAD_IMAGES_ENV_VAR):
      mp.delenv(env_var, raising=False)
    yield mp


def version_dir(data_dir: Path) -> Path:
  """Where a TFDS build in `data_dir` published its files."""
  return data_dir / NAME / str(imagenet2012_local_dataset_builder.Builder.VERSION)


def shard_files(data_dir: Path) -> dict[str, bytes]:
  """{name: bytes} of every `*.tfrecord*` shard a TFDS build published."""
  return {p.name: p.read_bytes() for p in sorted(version_dir(data_dir).glob('*.tfrecord*'))}


def split_shard_files(files: dict[str, bytes], splits) -> dict[str, bytes]:
  """The entries of `shard_files` or `classic_files` of the given splits."""
  def split_of(name: str) -> str:
    base = name.rsplit('/', 1)[-1].removeprefix(f'{NAME}-')
    return base.split('.')[0].split('-')[0]
  return {name: data for name, data in files.items() if split_of(name) in splits}


def build_classic(manual_dir: Path | str, output_dir: Path, *flags: str) -> int:
  """`imagenet2012-local build-classic` with `CLASSIC_SHARDS` files and DALI
  indexes, as its console script runs it; its exit status."""
  shards = [f for split, n in CLASSIC_SHARDS.items() for f in (f'--{split}_shards', str(n))]
  return cli.main([
      'build-classic', '--manual_dir', str(manual_dir), '--output_dir', str(output_dir),
      '--dali_index', *shards, *flags,
  ])


def classic_files(output_dir: Path) -> dict[str, bytes]:
  """{relative path: bytes} of a build-classic output, but metadata/report JSON."""
  return {
      p.relative_to(output_dir).as_posix(): p.read_bytes()
      for p in files_under(output_dir)
      if p.suffix != '.json'
  }
