"""Tests of `imagenet2012-local build-classic`: the classic layout from the archives."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imagenet2012_local.commands import classic_build
from imagenet2012_local.layouts import classic_layout
from imagenet2012_local.commands import cli
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.sources import labels
from imagenet2012_local.engine import plan
from imagenet2012_local import settings
from imagenet2012_local.sources import tar_reader
from imagenet2012_local.layouts import tfrecords
from imagenet2012_local.gate import verification
from tests import fake_archives
from tests.helpers import DEVKIT, DUMMY_DIR, VAL_TAR, build, manual_dir_with, read_split
from tests.helpers import kill_once_shards_are_kept
from tests.test_tpu_export import assert_records_hold_the_dataset, file_records
from tests.test_tpu_export import exported  # noqa: F401  (a fixture: export-tpu of the same archives)
from tests.test_tpu_export import file_names, records, shard_names

_ROOT = Path(__file__).resolve().parent.parent
SPLITS = {'train': (4, 26), 'validation': (2, 10), 'test': (2, 5)}


def _build_dummy(output_dir: Path, cache_dir: Path) -> Path:
  """The dummy archives built with the SPLITS shard counts (those of the
  `exported` fixture) and DALI indexes."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(settings.CACHE_DIR_ENV_VAR, str(cache_dir))
    classic_build.build(
        DUMMY_DIR,
        output_dir,
        {split: shards for split, (shards, _) in SPLITS.items()},
        dali_index=True,
    )
  return output_dir


@pytest.fixture(scope='module')
def classic(tmp_path_factory) -> Path:
  root = tmp_path_factory.mktemp('classic')
  return _build_dummy(root / 'out', root / 'cache')


def _files(folder: Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(folder)): p.read_bytes()
      for p in sorted(folder.rglob('*'))
      if p.is_file()
  }


def test_file_names(classic):
  expected = [n for s, (k, _) in SPLITS.items() for n in shard_names(s, k)]
  assert sorted(p.name for p in classic.iterdir()) == sorted(
      expected + [classic_layout.DALI_INDEX_DIR]
  )
  assert sorted(p.name for p in (classic / 'dali_idx').iterdir()) == sorted(
      f'{name}.idx' for name in expected
  )


@pytest.mark.parametrize('split', list(SPLITS))
def test_records_hold_what_the_tfds_build_holds(classic, dummy_build, split):
  assert_records_hold_the_dataset(classic, dummy_build, split)


@pytest.mark.parametrize('split', ['validation', 'test'])
def test_sorted_by_file_name_across_shards(classic, split):
  names = file_names(classic, split)
  assert names == sorted(names)


def test_train_is_in_the_tfds_builds_seeded_order(classic, dummy_build):
  # The TFDS build's shards, read in order, hold plan.shuffled_rows' order.
  assert file_names(classic, 'train') == list(read_split(dummy_build, 'train'))


def test_the_same_records_as_export_tpu(classic, exported):
  """Validation and test: the same files, DALI indexes included; train: the
  same records, in the build's order rather than the export's reshuffle."""
  ours, theirs = _files(classic), _files(exported)
  assert ours.keys() == theirs.keys()
  for name, data in ours.items():
    if 'train' not in name:
      assert data == theirs[name], name
  assert sorted(records(classic, 'train')) == sorted(records(exported, 'train'))


def test_shard_sizes_differ_by_at_most_one(classic):
  for split, (shards, total) in SPLITS.items():
    counts = [len(file_records(classic / n)) for n in shard_names(split, shards)]
    assert counts == classic_layout.shard_sizes(total, shards)
    assert max(counts) - min(counts) <= 1


def test_dali_indexes_match_the_files(classic):
  for index in (classic / classic_layout.DALI_INDEX_DIR).iterdir():
    sizes = [len(r) + 16 for r in file_records(classic / index.stem)]
    offsets = itertools.accumulate([0, *sizes[:-1]])
    assert index.read_text() == ''.join(f'{o} {s}\n' for o, s in zip(offsets, sizes))
    assert sum(sizes) == (classic / index.stem).stat().st_size


def test_two_builds_are_byte_identical(classic, tmp_path):
  again = _build_dummy(tmp_path / 'again', tmp_path / 'cache')
  assert _files(again) == _files(classic)


def test_default_shard_counts_through_the_cli(tmp_path, capsys):
  output_dir = tmp_path / 'out'
  argv = ['build-classic', '--manual_dir', str(DUMMY_DIR), '--output_dir', str(output_dir)]
  assert cli.main(argv) == 0
  names = [n for s, k in classic_layout.DEFAULT_SHARDS.items() for n in shard_names(s, k)]
  assert sorted(p.name for p in output_dir.iterdir()) == sorted(names)
  # Read in Python: a TFRecordDataset per file would take 20 ms each.
  counts = [
      len(list(tfrecords.read(output_dir / n))) for n in shard_names('train', 1024)
  ]
  assert counts == [1] * 26 + [0] * 998
  out = capsys.readouterr().out
  assert f'Wrote {output_dir}:' in out
  assert '  validation: 10 images in validation-00000-of-00128 ...' in out
  assert 'validation-00127-of-00128' in out and 'archive verified' in out
  assert list(tmp_path.iterdir()) == [output_dir]


def test_help_says_what_it_writes(capsys):
  with pytest.raises(SystemExit) as exit:
    cli.main(['build-classic', '--help'])
  assert exit.value.code == 0
  help_text = ' '.join(capsys.readouterr().out.split())  # Unwrapped.
  assert 'train-%05d-of-01024' in help_text
  assert 'straight from the downloaded archives' in help_text
  for flag in ('--manual_dir', '--output_dir', '--dali_index', '--no_verify',
               '--skip_bad_images', '--train_shards', '--overwrite'):
    assert flag in help_text


# Bad archives: the TFDS build's errors, and nothing published.


def _val_images(count: int, size: int = 32) -> list[tuple[str, bytes]]:
  rng = np.random.default_rng(0)
  return [
      (f'ILSVRC2012_val_{i:08d}.JPEG', fake_archives.encode_image(rng, size, size))
      for i in range(1, count + 1)
  ]


def _members(data: bytes) -> list[tarfile.TarInfo]:
  with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    return tar.getmembers()


def _cut_in_data() -> bytes:
  data = fake_archives.tar_bytes(_val_images(6))
  return data[: _members(data)[3].offset_data + 512]


def _corrupt_header() -> bytes:
  data = bytearray(fake_archives.tar_bytes(_val_images(6)))
  data[_members(bytes(data))[4].offset + 10] ^= 0xFF
  return bytes(data)


def _dummy_val(change) -> bytes:
  data = bytearray((DUMMY_DIR / VAL_TAR).read_bytes())
  change(data)
  return bytes(data)


def _flip_middle_byte(data: bytearray) -> None:
  data[len(data) // 2] ^= 0xFF


def _fake_val(*images: tuple[str, bytes]) -> dict[str, bytes]:
  return {VAL_TAR: fake_archives.tar_bytes(images)}


_BAD_ARCHIVES = {
    # name: (the manual dir's files, gate on, error)
    'cut_in_data': (lambda: {VAL_TAR: _cut_in_data()}, False, tar_reader.ArchiveError),
    'corrupt_header': (
        lambda: {VAL_TAR: _corrupt_header()}, False, tar_reader.ArchiveError
    ),
    'html_page': (
        lambda: {VAL_TAR: b'<html>Sign in</html>'.ljust(1024)},
        False,
        tar_reader.ArchiveError,
    ),
    'undecodable': (
        lambda: _fake_val(
            *_val_images(2), ('ILSVRC2012_val_00000003.JPEG', b'not an image')
        ),
        False,
        image_fixes.UndecodableImageError,
    ),
    'duplicates': (
        lambda: _fake_val(*_val_images(2), *_val_images(1)),
        False,
        plan.DuplicateImagesError,
    ),
    'no_label': (
        lambda: _fake_val(
            *_val_images(1), ('ILSVRC2012_val_00050001.JPEG', _val_images(1)[0][1])
        ),
        False,
        labels.LabelError,
    ),
    'devkit_not_a_tar_gz': (
        lambda: {
            VAL_TAR: (DUMMY_DIR / VAL_TAR).read_bytes(),
            DEVKIT: b'<html>404</html>',
        },
        False,
        labels.LabelError,
    ),
    'wrong_size': (
        lambda: {VAL_TAR: _dummy_val(lambda d: d.extend(bytes(512)))},
        True,
        verification.ChecksumError,
    ),
    'wrong_digest': (
        lambda: {VAL_TAR: _dummy_val(_flip_middle_byte)},
        True,
        verification.ChecksumError,
    ),
}


@pytest.mark.parametrize('case', list(_BAD_ARCHIVES))
def test_bad_archives_give_the_tfds_builds_errors(tmp_path, case):
  make, gate, error = _BAD_ARCHIVES[case]
  manual = tmp_path / 'manual'
  manual.mkdir()
  for name, data in make().items():
    (manual / name).write_bytes(data)
  with pytest.raises(error) as tfds_error:
    build(manual, tmp_path / 'data', verify_checksums=gate)
  output_dir = tmp_path / 'out'
  with pytest.raises(error) as our_error:
    classic_build.build(manual, output_dir, verify_checksums=gate)
  assert str(our_error.value) == str(tfds_error.value)
  assert len(str(our_error.value).splitlines()) == 2
  # No output, no staging folder; at most shards finished before the error,
  # kept for a rerun.
  assert [p.name for p in tmp_path.glob('out*')] in ([], ['out.interrupted-build'])
  assert not list(tmp_path.glob('out*/**/*.partial'))


def test_skipped_bad_images_are_those_the_tfds_build_skips(tmp_path):
  good = _val_images(4)
  bad = [('ILSVRC2012_val_00000005.JPEG', good[0][1][:200])]  # Cut off.
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(fake_archives.tar_bytes(good + bad))
  build(manual, tmp_path / 'data', verify_checksums=False, skip_bad_images=True)
  built = classic_build.build(
      manual, tmp_path / 'out', verify_checksums=False, skip_bad_images=True
  )
  assert file_names(tmp_path / 'out', 'validation') == sorted(
      read_split(tmp_path / 'data', 'validation')
  )
  (written,) = built.splits
  assert list(written.skipped_images) == [bad[0][0]]
  assert 'left out, no decoder reads them: 1' in classic_build.summary(built)


def test_cli_error_is_two_lines_and_exit_status_one(tmp_path):
  """A made-up archive fails the checksum gate, until --no_verify."""
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(fake_archives.tar_bytes(_val_images(3)))
  flags = ['--manual_dir', str(manual), '--output_dir', str(tmp_path / 'out')]
  failed = subprocess.run(  # As the console script runs it.
      [sys.executable, '-m', 'imagenet2012_local.commands.cli', 'build-classic', *flags],
      cwd=_ROOT, capture_output=True, text=True, check=False,
  )
  assert failed.returncode == 1
  assert 'Traceback' not in failed.stderr
  # The build's first line says what it builds; then the error's two lines.
  building, what, fix = failed.stderr.splitlines()
  assert building.startswith('Building validation from ILSVRC2012_img_val.tar')
  assert what.startswith('imagenet2012-local build-classic: error: ')
  assert 'is 10,240 bytes; the known copies are' in what
  assert '30,720 bytes (dummy_data.tsv)' in what
  assert '--no_verify' in fix  # This command's own way to turn the gate off.
  assert not list(tmp_path.glob('out*'))
  assert cli.main(['build-classic', *flags, '--no_verify']) == 0
  assert len(file_names(tmp_path / 'out', 'validation')) == 3


def test_existing_output_dir_is_kept_without_overwrite(tmp_path, capsys):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  output_dir = tmp_path / 'out'
  output_dir.mkdir()
  (output_dir / 'mine').write_text('keep me')
  argv = ['build-classic', '--manual_dir', str(manual), '--output_dir', str(output_dir)]
  assert cli.main(argv) == 1
  assert 'exists; pass --overwrite' in capsys.readouterr().err
  assert [p.name for p in output_dir.iterdir()] == ['mine']
  assert cli.main([*argv, '--overwrite', '--validation_shards', '2']) == 0
  assert sorted(p.name for p in output_dir.iterdir()) == shard_names('validation', 2)


def test_a_killed_build_leaves_nothing_that_looks_complete_and_resumes(
    tmp_path, capsys
):
  images = _val_images(300, size=256)
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(fake_archives.tar_bytes(images))
  output_dir = tmp_path / 'out'
  kept = tmp_path / 'out.interrupted-build'
  finished = kill_once_shards_are_kept('build-classic', manual, output_dir, '--dali_index')
  leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != 'manual')
  assert len(leftovers) == 3 and leftovers[0].startswith('out.incomplete-')
  assert leftovers[1:] == [kept.name, 'out.lock']  # Its flock died with it.
  assert 0 < finished < 100
  assert len(list(kept.glob('dali_idx/validation-*.idx'))) >= finished
  classic_build.build(
      manual, output_dir, {'validation': 100}, dali_index=True, verify_checksums=False
  )
  assert f'resuming: {finished} of 100 shards kept' in capsys.readouterr().err
  assert [p.name for p in tmp_path.iterdir() if p.name != 'manual'] == ['out']
  assert file_names(output_dir, 'validation') == [name for name, _ in images]
