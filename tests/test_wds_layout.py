"""Tests of `imagenet2012-local build-wds`: WebDataset shards from the archives,
read back by the `webdataset` package and HF `datasets`' webdataset loader."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import datasets
import pytest
import webdataset

from imagenet2012_local.commands import archive_build
from imagenet2012_local.layouts import classic_layout
from imagenet2012_local.commands import cli
from imagenet2012_local.sources import labels
from imagenet2012_local import settings
from imagenet2012_local.sources import tar_reader
from imagenet2012_local.gate import verification
from imagenet2012_local.commands import wds_build
from imagenet2012_local.layouts import wds_layout
from tests import fake_archives
from tests.helpers import DUMMY_DIR, VAL_TAR, manual_dir_with, read_split
from tests.helpers import kill_once_shards_are_kept, two_lines, val_images

SPLITS = {'train': (4, 26), 'validation': (2, 10), 'test': (2, 5)}  # shards, images
_CLASS_NAMES = labels.class_names_file().read_text().split()


def _build_dummy(output_dir: Path, cache_dir: Path) -> Path:
  """The dummy archives built with the SPLITS shard counts."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(settings.CACHE_DIR_ENV_VAR, str(cache_dir))
    wds_build.build(
        DUMMY_DIR, output_dir, {split: shards for split, (shards, _) in SPLITS.items()}
    )
  return output_dir


@pytest.fixture(scope='module')
def wds(tmp_path_factory) -> Path:
  root = tmp_path_factory.mktemp('wds')
  return _build_dummy(root / 'out', root / 'cache')


def _shard_paths(output_dir: Path, split: str) -> list[str]:
  return [str(p) for p in sorted(output_dir.glob(f'imagenet1k-{split}-*.tar'))]


def _samples(output_dir: Path, split: str) -> list[dict]:
  """The split's samples as the `webdataset` package reads them, in order."""
  return list(webdataset.WebDataset(_shard_paths(output_dir, split), shardshuffle=False))


def _files(folder: Path) -> dict[str, bytes]:
  return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_file_names(wds):
  expected = [
      wds_layout.shard_name(split, k) for split, (shards, _) in SPLITS.items()
      for k in range(shards)
  ]
  assert sorted(p.name for p in wds.iterdir()) == sorted([*expected, '_info.json'])
  assert expected[:2] == ['imagenet1k-train-0000.tar', 'imagenet1k-train-0001.tar']


@pytest.mark.parametrize('split', list(SPLITS))
def test_webdataset_reads_what_the_tfds_build_holds(wds, dummy_build, split):
  samples = _samples(wds, split)
  tfds_examples = read_split(dummy_build, split)
  assert {
      json.loads(s['json'])['filename']: (int(s['cls']), s['jpg']) for s in samples
  } == tfds_examples
  for s in samples:
    meta = json.loads(s['json'])
    assert s['__key__'] + '.JPEG' == meta['filename']  # timm's key convention.
    assert meta['label'] == int(s['cls'])
    assert meta['wnid'] == (_CLASS_NAMES[meta['label']] if meta['label'] >= 0 else '')
    assert {k for k in s if not k.startswith('__')} == {'jpg', 'cls', 'json'}


@pytest.mark.parametrize('split', list(SPLITS))
def test_hf_datasets_reads_what_the_tfds_build_holds(wds, dummy_build, split, tmp_path):
  # `webdataset` is a loader packaged with `datasets`: nothing is downloaded.
  loaded = datasets.load_dataset(
      'webdataset',
      data_files={split: _shard_paths(wds, split)},
      split=split,
      cache_dir=str(tmp_path / 'hf'),
  ).cast_column('jpg', datasets.Image(decode=False))
  assert {
      row['json']['filename']: (row['cls'], row['jpg']['bytes']) for row in loaded
  } == read_split(dummy_build, split)


@pytest.mark.parametrize('split', ['validation', 'test'])
def test_sorted_by_file_number_across_shards(wds, split):
  names = [s['__key__'] for s in _samples(wds, split)]
  assert names == sorted(names) and len(names) == SPLITS[split][1]


def test_train_is_in_the_tfds_builds_seeded_order(wds, dummy_build):
  # The TFDS build's one train shard holds plan.shuffled_rows' order.
  names = [json.loads(s['json'])['filename'] for s in _samples(wds, 'train')]
  assert names == list(read_split(dummy_build, 'train'))


def test_info_json_gives_every_shard_and_its_samples(wds):
  info = json.loads((wds / '_info.json').read_text())
  for split, (shards, total) in SPLITS.items():
    described = info['splits'][split]
    counts = [
        len(list(webdataset.WebDataset(str(wds / name), shardshuffle=False)))
        for name in described['filenames']
    ]
    names = [wds_layout.shard_name(split, k) for k in range(shards)]
    assert described['filenames'] == names
    sizes = classic_layout.shard_sizes(total, shards)
    assert described['shard_lengths'] == counts == sizes
    assert described['num_samples'] == total


def test_members_have_fixed_headers_and_sample_order(wds):
  for path in _shard_paths(wds, 'train') + _shard_paths(wds, 'test'):
    with tarfile.open(path) as tar:
      members = tar.getmembers()
    extensions = [m.name.rsplit('.', 1)[1] for m in members]
    assert extensions == ['jpg', 'cls', 'json'] * (len(members) // 3)
    for m in members:
      assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) == (
          0, 0, 0, '', '', 0o644, tarfile.REGTYPE
      ), (path, m.name)


@pytest.mark.parametrize(
    'name', ['a', 'n01440764_10026.jpg', 'ILSVRC2012_test_00100000.json', 'x' * 100]
)
@pytest.mark.parametrize('size', [0, 1, 511, 512, 513, 110_000, 8**11 - 1])
def test_headers_are_those_tarfile_writes(name, size):
  info = tarfile.TarInfo(name)
  info.size, info.mode = size, 0o644
  assert wds_layout.header(name, size) == info.tobuf(format=tarfile.USTAR_FORMAT)


def test_two_builds_are_byte_identical(wds, tmp_path):
  again = _build_dummy(tmp_path / 'again', tmp_path / 'cache')
  assert _files(again) == _files(wds)


def test_default_shard_counts_and_summary_through_the_cli(tmp_path, capsys):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  argv = ['build-wds', '--manual_dir', str(manual), '--output_dir', str(tmp_path / 'out')]
  assert cli.main(argv) == 0
  names = sorted(p.name for p in (tmp_path / 'out').iterdir())
  assert names == ['_info.json'] + [
      f'imagenet1k-validation-{k:04d}.tar' for k in range(64)
  ]
  out = capsys.readouterr().out
  assert (
      'validation: 10 images in imagenet1k-validation-0000.tar ...'
      ' imagenet1k-validation-0063.tar' in out
  )
  assert 're-encoded to RGB JPEG: 1 (e.g. ILSVRC2012_val_00000003.JPEG)' in out


def test_help_says_what_it_writes(capsys):
  with pytest.raises(SystemExit) as exit:
    cli.main(['build-wds', '--help'])
  assert exit.value.code == 0
  help_text = ' '.join(capsys.readouterr().out.split())
  assert 'imagenet1k-train-{0000..1023}.tar' in help_text
  for flag in ('--manual_dir', '--output_dir', '--no_verify', '--skip_bad_images',
               '--train_shards', '--validation_shards', '--overwrite', '--fresh'):
    assert flag in help_text


def _dummy_val(change) -> bytes:
  data = bytearray((DUMMY_DIR / VAL_TAR).read_bytes())
  change(data)
  return bytes(data)


def _flip_middle_byte(data: bytearray) -> None:
  data[len(data) // 2] ^= 0xFF


_BAD_ARCHIVES = {
    # name: (the validation archive's bytes, gate on, error)
    'wrong_digest': (
        lambda: _dummy_val(_flip_middle_byte), True, verification.ChecksumError
    ),
    'wrong_size': (
        lambda: _dummy_val(lambda d: d.extend(bytes(512))),
        True,
        verification.ChecksumError,
    ),
    'html_page': (
        lambda: b'<html>Sign in</html>'.ljust(1024), False, tar_reader.ArchiveError
    ),
    'cut_in_data': (
        lambda: fake_archives.tar_bytes(val_images(6))[:4096],
        False,
        tar_reader.ArchiveError,
    ),
}


@pytest.mark.parametrize('case', list(_BAD_ARCHIVES))
def test_a_bad_archive_publishes_nothing(tmp_path, case):
  make, gate, error = _BAD_ARCHIVES[case]
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(make())
  with pytest.raises(error) as raised:
    wds_build.build(manual, tmp_path / 'out', verify_checksums=gate)
  assert VAL_TAR in two_lines(raised.value)[0]
  # No output, no staging folder; shards of a wrong archive are not kept.
  leftovers = [p.name for p in tmp_path.glob('out*')]
  assert leftovers in ([], [] if gate else ['out.interrupted-build'])


def test_existing_output_dir_is_kept_without_overwrite(tmp_path, capsys):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  output_dir = tmp_path / 'out'
  output_dir.mkdir()
  (output_dir / 'mine').write_text('keep me')
  argv = ['build-wds', '--manual_dir', str(manual), '--output_dir', str(output_dir)]
  assert cli.main(argv) == 1
  what, fix = capsys.readouterr().err.splitlines()
  assert what == (
      f'imagenet2012-local build-wds: error: {output_dir} exists; pass'
      ' --overwrite to replace it.'
  )
  assert fix.startswith('With --overwrite it is replaced only once')
  assert [p.name for p in output_dir.iterdir()] == ['mine']
  assert cli.main([*argv, '--overwrite', '--validation_shards', '2']) == 0
  assert sorted(p.name for p in output_dir.iterdir()) == [
      '_info.json', 'imagenet1k-validation-0000.tar', 'imagenet1k-validation-0001.tar'
  ]


def test_a_killed_build_resumes_to_the_bytes_of_an_uninterrupted_one(tmp_path, capsys):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(fake_archives.tar_bytes(val_images(300, size=256)))
  output_dir = tmp_path / 'out'
  finished = kill_once_shards_are_kept('build-wds', manual, output_dir)
  assert 0 < finished < 100
  wds_build.build(manual, output_dir, {'validation': 100}, verify_checksums=False)
  assert f'resuming: {finished} of 100 shards kept' in capsys.readouterr().err
  assert sorted(p.name for p in tmp_path.iterdir()) == ['manual', 'out']
  uninterrupted = wds_build.build(
      manual, tmp_path / 'again', {'validation': 100}, verify_checksums=False
  )
  assert uninterrupted.splits[0].num_examples == 300
  assert _files(output_dir) == _files(tmp_path / 'again')


def test_summary_lines_name_what_was_changed():
  split = archive_build.SplitWritten(
      split='validation', num_shards=2, shard_lengths=[2, 1], num_bytes=4096,
      archive_status='verified', fixed_images={'b.JPEG': 'CMYK', 'a.JPEG': 'PNG'},
      skipped_images={}, skipped_members={'x.txt': 'not an image'},
  )
  assert archive_build.summary_lines(split, 'first.tar', 'last.tar') == [
      '  validation: 3 images in first.tar ... last.tar (4,096 bytes); archive verified',
      '    re-encoded to RGB JPEG: 2 (e.g. a.JPEG, b.JPEG)',
      '    archive members that are no images: 1 (e.g. x.txt)',
  ]
