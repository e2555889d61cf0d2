"""No command deletes its inputs: outputs at, around or inside the manual dir
(or the exported dataset) are refused up front, whatever the flags, and
nothing is deleted; symlinks are resolved, never followed into a deletion."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.commands import cli
from imagenet2012_local.gate import protected_paths
from imagenet2012_local.engine import resume
from tests.helpers import DEVKIT, VAL_TAR, build, failed_build, manual_dir_with

_PREFIXES = {
    'build-classic': 'imagenet2012-local build-classic: error: ',
    'export-tpu': 'imagenet2012-local export-tpu: error: ',
}


def _digests(folder: Path) -> dict[str, str]:
  """{path relative to `folder`: SHA-256} of every file below it."""
  return {
      str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
      for path in sorted(folder.rglob('*'))
      if path.is_file()
  }


def _refused(argv: list[str], capsys) -> tuple[str, str]:
  """Runs the command, expecting a refusal; its two lines."""
  assert cli.main(argv) == 1
  err = capsys.readouterr().err
  lines = err.removeprefix(_PREFIXES[argv[0]]).splitlines()
  assert len(lines) == 2, err
  assert lines[1].startswith('Nothing was deleted'), err
  return lines[0], lines[1]


@pytest.fixture
def manual(tmp_path) -> Path:
  """A manual dir holding the validation archive and the devkit, in
  `tmp_path/data/manual`, so that its parent holds nothing else."""
  (tmp_path / 'data').mkdir()
  return manual_dir_with(tmp_path / 'data', VAL_TAR, DEVKIT)


# output -> (flags, how its refusal names the manual dir)
_CLASSIC_OUTPUTS = {
    'the manual dir': (lambda m: m, ['--overwrite'], 'is the input folder'),
    'its parent': (lambda m: m.parent, ['--overwrite'], 'holds the input folder'),
    'its grandparent': (
        lambda m: m.parent.parent, ['--overwrite'], 'holds the input folder'
    ),
    'a new folder inside': (lambda m: m / 'out', [], 'is inside the input folder'),
    'an archive in it': (
        lambda m: m / VAL_TAR, ['--overwrite'], 'is inside the input folder'
    ),
    'a symlink to it': (
        lambda m: _symlink(m.parent.parent / 'link', m),
        ['--overwrite', '--fresh'],
        'is the input folder',
    ),
}


def _symlink(link: Path, target: Path) -> Path:
  link.symlink_to(target)
  return link


@pytest.mark.parametrize('case', _CLASSIC_OUTPUTS)
def test_build_classic_refuses_outputs_at_around_or_inside_the_manual_dir(
    manual, case, capsys
):
  output_of, flags, relation = _CLASSIC_OUTPUTS[case]
  output_dir = output_of(manual)
  before = _digests(manual.parent.parent)
  what, how = _refused(
      ['build-classic', '--manual_dir', str(manual), '--output_dir',
       str(output_dir), *flags],
      capsys,
  )
  assert what.startswith(f'{output_dir} would be replaced or deleted'), what
  assert what.endswith(f'{relation} {manual}.'), what
  assert f'outside {manual}' in how
  assert _digests(manual.parent.parent) == before  # Nothing added or lost.


def test_a_manual_dir_given_through_a_symlink_is_protected_too(
    manual, tmp_path, capsys
):
  link = _symlink(tmp_path / 'manual_link', manual)
  before = _digests(manual)
  what, _ = _refused(
      ['build-classic', '--manual_dir', str(link), '--output_dir', str(manual),
       '--overwrite'],
      capsys,
  )
  assert what.endswith(f'is the input folder {manual}.'), what
  assert _digests(manual) == before


def test_an_output_holding_an_archive_is_never_replaced(manual, tmp_path, capsys):
  """Not the manual dir: an old output where a copy of an archive was put."""
  output_dir = tmp_path / 'old_output'
  output_dir.mkdir()
  (output_dir / 'downloads').mkdir()
  copy = output_dir / 'downloads' / 'ILSVRC2012_img_val (1).tar'
  shutil.copy(manual / VAL_TAR, copy)
  what, _ = _refused(
      ['build-classic', '--manual_dir', str(manual), '--output_dir',
       str(output_dir), '--overwrite'],
      capsys,
  )
  assert what == (
      f'{output_dir} would be replaced or deleted, but it holds the ImageNet'
      f' archive {copy}.'
  )
  assert copy.read_bytes() == (manual / VAL_TAR).read_bytes()


@pytest.mark.parametrize('flags', [[], ['--fresh']])
def test_a_kept_shards_folder_linked_to_the_manual_dir_is_refused(
    manual, tmp_path, flags, capsys
):
  output_dir = tmp_path / 'out'
  kept = _symlink(Path(f'{output_dir}{resume.FOLDER_SUFFIX}'), manual)
  before = _digests(manual)
  what, _ = _refused(
      ['build-classic', '--manual_dir', str(manual), '--output_dir',
       str(output_dir), *flags],
      capsys,
  )
  assert what.startswith(f'{kept} would be replaced or deleted'), what
  assert _digests(manual) == before
  assert kept.is_symlink() and not output_dir.exists()


def test_a_stale_staging_folder_holding_an_archive_is_refused(
    manual, tmp_path, capsys
):
  stale = tmp_path / 'out.incomplete-12345678'
  stale.mkdir()
  shutil.copy(manual / VAL_TAR, stale / VAL_TAR)
  what, _ = _refused(
      ['build-classic', '--manual_dir', str(manual), '--output_dir',
       str(tmp_path / 'out')],
      capsys,
  )
  assert what.startswith(f'{stale} would be replaced or deleted'), what
  assert (stale / VAL_TAR).read_bytes() == (manual / VAL_TAR).read_bytes()


def test_a_stale_staging_symlink_is_neither_followed_nor_deleted(
    manual, tmp_path, capsys
):
  """A folder of a killed build's name that is a symlink is not ours."""
  stale = _symlink(tmp_path / 'out.incomplete-12345678', manual)
  real_stale = tmp_path / 'out.incomplete-abcdefgh'
  real_stale.mkdir()
  before = _digests(manual)
  argv = ['build-classic', '--manual_dir', str(manual), '--output_dir',
          str(tmp_path / 'out'), '--validation_shards', '2']
  assert cli.main(argv) == 0, capsys.readouterr().err
  assert stale.is_symlink() and _digests(manual) == before
  assert not real_stale.exists()  # A real one is still cleaned up.
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
      'validation-00000-of-00002', 'validation-00001-of-00002'
  ]


def _version_dir(data_dir: Path) -> Path:
  return data_dir / 'imagenet2012_local' / '5.1.0'


# output -> (how its refusal names the dataset's version folder)
_EXPORT_OUTPUTS = {
    'the version folder': (_version_dir, 'is the input folder'),
    'the data dir': (lambda d: d, 'holds the input folder'),
    'a folder inside it': (lambda d: _version_dir(d) / 'tpu', 'is inside the input folder'),
    'a symlink to the data dir': (
        lambda d: _symlink(d.parent / f'{d.name}_link', d), 'holds the input folder'
    ),
}


@pytest.mark.parametrize('case', _EXPORT_OUTPUTS)
def test_export_tpu_never_replaces_the_dataset_it_reads(dummy_build, case, capsys):
  output_of, relation = _EXPORT_OUTPUTS[case]
  output_dir = output_of(dummy_build)
  dataset = dummy_build / 'imagenet2012_local'
  before = _digests(dataset)
  try:
    what, how = _refused(
        ['export-tpu', '--data_dir', str(dummy_build), '--output_dir',
         str(output_dir), '--overwrite'],
        capsys,
    )
  finally:
    if output_dir.is_symlink():
      output_dir.unlink()  # The session's build is shared.
  version_dir = _version_dir(dummy_build)
  assert what == (
      f'{output_dir} would be replaced or deleted, but it {relation}'
      f' {version_dir}.'
  )
  assert f'outside {version_dir}' in how
  assert _digests(dataset) == before


# data dir -> whether it is the manual dir (else inside it)
_TFDS_DATA_DIRS = {
    'the manual dir': lambda m: m,
    'inside it': lambda m: m / 'tfds',
    'a symlink to it': lambda m: _symlink(m.parent / 'tfds_link', m),
}


@pytest.mark.parametrize('case', _TFDS_DATA_DIRS)
def test_tfds_build_refuses_a_data_dir_at_or_inside_the_manual_dir(manual, case):
  data_dir = _TFDS_DATA_DIRS[case](manual)
  before = _digests(manual)
  what, how = failed_build(
      manual, data_dir, protected_paths.InputFolderError, resume=False
  )
  kept = f'{data_dir}/imagenet2012_local/5.1.0{resume.FOLDER_SUFFIX}'
  assert what == (
      f'{kept} would be replaced or deleted, but it is inside the input'
      f' folder {manual}.'
  )
  assert how.startswith(f'Nothing was deleted: write the output outside {manual}')
  assert _digests(manual) == before


def test_tfds_build_leaves_a_symlink_of_a_killed_builds_name_alone(manual):
  """Beside the manual dir is fine; an `incomplete.*` folder that is a symlink
  to it is neither followed nor deleted."""
  data_dir = manual.parent
  (data_dir / 'imagenet2012_local').mkdir()
  stale = _symlink(data_dir / 'imagenet2012_local' / 'incomplete.abc123_5.1.0', manual)
  before = _digests(manual)
  build(manual, data_dir)
  assert stale.is_symlink() and _digests(manual) == before


@pytest.mark.parametrize('resume_flag', [None, False])
def test_tfds_build_refuses_a_kept_shards_folder_linked_to_the_manual_dir(
    manual, tmp_path, resume_flag
):
  data_dir = tmp_path / 'tfds'
  (data_dir / 'imagenet2012_local').mkdir(parents=True)
  kept = _symlink(
      data_dir / 'imagenet2012_local' / f'5.1.0{resume.FOLDER_SUFFIX}', manual
  )
  before = _digests(manual)
  what, _ = failed_build(
      manual, data_dir, protected_paths.InputFolderError, resume=resume_flag
  )
  assert what == (
      f'{kept} would be replaced or deleted, but it is the input folder'
      f' {manual}.'
  )
  assert kept.is_symlink() and _digests(manual) == before


def test_tfds_build_overwrite_never_deletes_archives_kept_in_the_version_folder(
    manual, tmp_path
):
  """TFDS's --overwrite deletes the version folder before the build starts:
  archives moved into it are refused up front, and stay."""
  data_dir = tmp_path / 'built'
  build(manual, data_dir)
  inside = data_dir / 'imagenet2012_local' / '5.1.0' / 'raw'
  shutil.copytree(manual, inside)
  before = _digests(inside)
  with pytest.raises(protected_paths.InputFolderError) as refused:
    tfds.builder('imagenet2012_local', data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=inside,
            download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS,
        )
    )
  what, how = str(refused.value).splitlines()
  assert what == (
      f'{inside.parent} would be replaced or deleted, but it holds the input'
      f' folder {inside}.'
  )
  assert how.startswith('Nothing was deleted')
  assert _digests(inside) == before
