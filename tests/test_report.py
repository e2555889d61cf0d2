"""`imagenet2012-local report` on the dummy build: pictures and summary."""

from __future__ import annotations

import collections
import json
import random
import re
import shutil
from pathlib import Path

import PIL.Image
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.commands import cli
from imagenet2012_local import report
from imagenet2012_local.report import records
from imagenet2012_local.report import scan
from imagenet2012_local.report import summary as report_summary

_VERSION_DIR = 'imagenet2012_local/5.1.0'


def _report(data_dir: Path, out: Path, *flags: str) -> str:
  """Runs the command in-process; returns summary.md."""
  argv = ['report', '--data_dir', str(data_dir), '--out', str(out), *flags]
  assert cli.main(argv) == 0
  return (out / report.SUMMARY_FILE).read_text()


@pytest.fixture(scope='module')
def report_dir(dummy_build, tmp_path_factory) -> Path:
  out = tmp_path_factory.mktemp('report')
  _report(dummy_build, out)
  return out


@pytest.fixture(scope='module')
def summary(report_dir) -> str:
  return (report_dir / report.SUMMARY_FILE).read_text()


@pytest.fixture(scope='module')
def info(dummy_build) -> tfds.core.DatasetInfo:
  return tfds.builder('imagenet2012_local', data_dir=dummy_build).info


@pytest.fixture
def build_copy(dummy_build, tmp_path) -> Path:
  """A copy of the dummy build whose files a test may change."""
  shutil.copytree(dummy_build / _VERSION_DIR, tmp_path / _VERSION_DIR)
  return tmp_path


def _table_counts(summary: str) -> dict[str, int]:
  """{split: examples} from the 'Examples per split' table."""
  section = summary.split('## Examples per split')[1].split('\n## ')[0]
  rows = re.findall(r'^\| (\w+) \| ([\d,]+) \|', section, re.MULTILINE)
  return {split: int(count.replace(',', '')) for split, count in rows}


def test_pictures_are_written_and_sensible(report_dir, info):
  fixed = info.metadata['fixed_images']
  names = ['class_counts.png', 'image_sizes.png']
  names += [f'{split}_sample.png' for split in info.splits]
  names += [f'{split}_fixed.png' for split in info.splits if fixed[split]]
  for name in names:
    with PIL.Image.open(report_dir / name) as image:
      assert image.format == 'PNG', name
      # A sheet of at least one captioned tile, a chart of readable size.
      assert image.width >= 300 and image.height >= 200, (name, image.size)
      darkest, lightest = image.convert('L').getextrema()
      assert lightest - darkest > 100, f'{name} is blank'


def test_summary_links_every_picture_written(report_dir, summary):
  linked = set(re.findall(r'!\[[^\]]*\]\(([^)]+)\)', summary))
  assert linked == {path.name for path in report_dir.glob('*.png')}


def test_summary_counts_match_the_dataset(summary, info):
  assert _table_counts(summary) == {
      split: split_info.num_examples
      for split, split_info in info.splits.items()
  }
  assert '| train | 26 | 1,281,167 | -1,281,141 |' in summary


def test_summary_lists_fixed_files_with_reasons(summary, info):
  fixed = info.metadata['fixed_images']
  assert any(fixed.values())
  for split, reasons in fixed.items():
    for file_name, reason in reasons.items():
      assert f'| {split} | {file_name} |' in summary
      assert reason in summary
  assert 'Skipped by the build: none.' in summary


def test_summary_uses_the_devkit_words(summary):
  assert 'n01440764 (tench, Tinca tinca)' in summary
  assert 'ILSVRC2012_test_00000001.JPEG: no label' in summary


def test_summary_lists_archive_digests(summary, info):
  archives = info.metadata['archives']
  for name, archive in archives.items():
    assert f'| {name} | {archive["split"]} |' in summary
    assert archive['md5'] in summary
  assert f'{len(archives)} of {len(archives)} archives verified' in summary


def test_summary_flags_missing_classes(summary):
  # The dummy train split has 5 of the 1,000 classes.
  assert '- train: median 0 examples per class, 995 missing' in summary


def test_sample_is_seeded_and_bounded(dummy_build, tmp_path):
  def sample_section(out: str, seed: str) -> str:
    text = _report(
        dummy_build, tmp_path / out, '--samples', '5', '--seed', seed
    )
    return text.split('## Sampled images')[1]

  first = sample_section('a', '1')
  assert first == sample_section('b', '1')
  assert first != sample_section('c', '2')
  assert 'train: the 5 images on train_sample.png' in first
  assert 'test: the 5 images' in first  # The whole (5-image) test split.


def test_reservoir_sample_is_uniform():
  hits = collections.Counter()
  for seed in range(2000):
    reservoir = scan.Reservoir(2, random.Random(seed))
    for n in range(10):
      reservoir.add(records.Example(file_name=str(n), label=0, data=b''))
    hits.update(example.file_name for example in reservoir.items)
  # Each of the 10 items is kept with probability 2/10: 400 times expected.
  assert all(300 < hits[str(n)] < 500 for n in range(10)), hits


def test_build_time_and_skipped_images(build_copy, tmp_path):
  version_dir = build_copy / _VERSION_DIR
  stats_file = version_dir / report_summary.BUILD_STATS_FILE
  stats_file.unlink(missing_ok=True)
  assert 'Build time: not recorded.' in _report(build_copy, tmp_path / 'a')

  stats_file.write_text(json.dumps({'seconds': 3725.4}))
  metadata_file = version_dir / 'metadata.json'
  metadata = json.loads(metadata_file.read_text())
  metadata['skipped_images'] = {'train': {'n01440764_1.JPEG': 'truncated'}}
  metadata_file.write_text(json.dumps(metadata))
  summary = _report(build_copy, tmp_path / 'b')
  assert 'Build time: 1 h 02 min (generation, without start-up).' in summary
  assert '| train | n01440764_1.JPEG | - | truncated |' in summary
  train_row = r'^\| train \| 26 \| .* \| 3 \| 1 \|$'  # 3 fixed, 1 skipped.
  assert re.search(train_row, summary, re.MULTILINE)


def test_unprepared_data_dir_fails_with_a_message(tmp_path, capsys):
  argv = ['report', '--data_dir', str(tmp_path), '--out', str(tmp_path / 'r')]
  assert cli.main(argv) == 1
  assert 'No prepared imagenet2012_local' in capsys.readouterr().err
