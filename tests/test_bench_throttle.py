"""The harness's read throttle: the limits it writes into a real cgroup, that
they hold, the two-line errors where it cannot throttle, and the disk kinds
on its command line and in its reports."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from bench import cgroup
from bench import disk_report
from bench import report
from bench import run
from bench import throttle
from tests.helpers import two_lines


def _device_or_skip(path: Path) -> str:
  try:
    return throttle.block_device(path)
  except cgroup.CgroupError as e:
    pytest.skip(f'{path} is on no block device here: {e}')


@contextlib.contextmanager
def _made_or_skip(group: throttle.ReadThrottle):
  """`with group`, or the test skipped where no cgroup is writable."""
  try:
    group.__enter__()
  except cgroup.CgroupError as e:
    pytest.skip(f'no writable blkio/io cgroup here: {e}')
  try:
    yield group
  finally:
    group.__exit__(None, None, None)


def _throttle_or_skip(
    device: str, limit: throttle.ReadLimit
) -> throttle.ReadThrottle:
  """A group under this process's own blkio/io cgroup, not yet made."""
  try:
    return throttle.ReadThrottle(device, limit)
  except cgroup.CgroupError as e:
    pytest.skip(f'no blkio/io cgroup here: {e}')


def _device_number(path: Path) -> str:
  device = path.stat().st_dev
  return f'{os.major(device)}:{os.minor(device)}'


@pytest.mark.parametrize(
    'limit',
    [
        *(throttle.DISK_KINDS[kind]
          for kind in ('standard-cloud', 'spinning', 'ssd-cloud')),
        throttle.ReadLimit(iops=100),
        throttle.ReadLimit(bytes_per_s=5_000_000),
    ],
    ids=lambda limit: limit.describe(),
)
def test_the_group_holds_the_limits_and_the_run(tmp_path, limit):
  device = _device_or_skip(tmp_path)
  assert device == _device_number(tmp_path) or Path(
      f'/sys/dev/block/{_device_number(tmp_path)}/partition'
  ).exists()
  group = _throttle_or_skip(device, limit)
  with _made_or_skip(group):
    if group.version == 1:
      iops = (group.path / 'blkio.throttle.read_iops_device').read_text()
      bps = (group.path / 'blkio.throttle.read_bps_device').read_text()
      assert iops.split() == ([device, str(limit.iops)] if limit.iops else [])
      assert bps.split() == (
          [device, str(limit.bytes_per_s)] if limit.bytes_per_s else []
      )
    else:
      io_max = (group.path / 'io.max').read_text().split()
      assert io_max[0] == device
      assert (f'riops={limit.iops}' in io_max) == bool(limit.iops)
      assert (f'rbps={limit.bytes_per_s}' in io_max) == bool(limit.bytes_per_s)
    # A wrapped command runs in the group.
    own = subprocess.run(
        group.wrap(['cat', '/proc/self/cgroup']),
        stdout=subprocess.PIPE, text=True, check=True,
    ).stdout
    assert group.path.name in own
  assert not group.path.exists()


def test_throttled_random_reads_are_limited(tmp_path):
  path = tmp_path / 'archive'
  path.write_bytes(b'\0' * (8 << 20))
  iops = 100
  group = _throttle_or_skip(_device_or_skip(path), throttle.ReadLimit(iops))
  alone = throttle.measured_reads_per_s(path, 0.5, None)
  if alone < 3 * iops:
    pytest.skip(f'this disk serves {alone:.0f} random reads/s: too few to'
                f' show a limit of {iops}')
  with _made_or_skip(group):
    limited = throttle.measured_reads_per_s(path, 1, group)
  # The first reads of a slice may pass before the kernel holds them back.
  assert limited < 1.5 * iops, (alone, limited)


def test_a_directory_that_is_no_cgroup_gives_two_lines(tmp_path):
  with pytest.raises(cgroup.CgroupError) as raised:
    throttle.ReadThrottle('8:0', throttle.ReadLimit(100), parent=tmp_path)
  what, how = two_lines(raised.value)
  assert str(tmp_path) in what and 'neither' in what
  assert '--disk-kind' in how


def test_an_unwritable_cgroup_gives_two_lines_and_leaves_nothing(tmp_path):
  # A v1 blkio group as the kernel shows one, made immutable: even root
  # cannot make a group in it.
  fake = tmp_path / 'blkio'
  fake.mkdir()
  (fake / 'blkio.throttle.read_iops_device').touch()
  if subprocess.run(['chattr', '+i', str(fake)], check=False).returncode:
    pytest.skip('chattr +i does not work here')
  try:
    group = throttle.ReadThrottle('8:0', throttle.ReadLimit(100), parent=fake)
    with pytest.raises(cgroup.CgroupError) as raised:
      group.__enter__()
  finally:
    subprocess.run(['chattr', '-i', str(fake)], check=True)
  what, how = two_lines(raised.value)
  assert str(group.path) in what and '8:0' in what
  assert 'root' in how and '--read-iops' in how
  assert not group.path.exists()


def test_a_device_the_kernel_refuses_gives_two_lines_and_leaves_nothing():
  # No such disk: the kernel refuses the limit.
  group = _throttle_or_skip('0:0', throttle.ReadLimit(100))
  with pytest.raises(cgroup.CgroupError) as raised:
    group.__enter__()
  what, _ = two_lines(raised.value)
  if 'Permission denied' in what:
    pytest.skip(f'no writable blkio/io cgroup here: {what}')
  assert '0:0' in what and str(group.path) in what
  assert not group.path.exists()


def test_the_command_line_names_a_disk_that_cannot_be_throttled(capsys):
  memory_fs = Path('/dev/shm')
  if not memory_fs.is_dir() or Path(
      f'/sys/dev/block/{_device_number(memory_fs)}'
  ).exists():
    pytest.skip('no memory file system at /dev/shm')
  workdir = memory_fs / f'imagenet2012_bench_test_{os.getpid()}'
  try:
    assert run.main(['--read-iops', '100', '--workdir', str(workdir)]) == 2
  finally:
    workdir.rmdir()  # Fails unless it stopped before writing archives.
  what, how = two_lines(capsys.readouterr().err.strip())
  assert str(workdir) in what and 'not a block device' in what
  assert '--disk-kind' in how


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--disk-kind', 'floppy'], 'unknown disk kinds: floppy'),
        (['--disk-kind', 'spinning', '--read-iops', '10'], 'give one'),
        (['--read-mbs', '0'], '--read-mbs must be positive'),
        (['--read-iops', '-1'], '--read-iops must be positive'),
    ],
)
def test_the_command_line_refuses_bad_limits(capsys, argv, message):
  with pytest.raises(SystemExit):
    run.parse_args(argv)
  assert message in capsys.readouterr().err


def test_each_disk_kind_runs_with_its_limits_into_its_own_file():
  args = run.parse_args(['--disk-kind', 'ssd-cloud,none,standard-cloud'])
  per_kind = run._per_disk_kind(args)
  assert [(a.disk_kind, a.read_iops, a.read_mbs) for a in per_kind] == [
      ('ssd-cloud', 3000, 125), ('none', None, None),
      ('standard-cloud', 375, 60),
  ]
  stems = [run._results_stem(a, 'archives-x').name for a in per_kind]
  assert stems == ['results-archives-x-ssd-cloud', 'results-archives-x',
                   'results-archives-x-standard-cloud']
  given = run._per_disk_kind(run.parse_args(['--read-iops', '200']))
  assert run._results_stem(given[0], 'a').name == 'results-a-iops200-mbs0'


def test_the_report_gives_the_disk_and_the_goal_ratios():
  walls = {'floor': 40.0, 'floor-verified': 80.0, 'upstream': 76.0,
           'ours': 100.0, 'ours-noverify': 88.0, 'ours-rebuild': 50.0}
  results = {
      'config': {'variants': list(walls), 'cold': True, 'cache_limit': 2.5,
                 'repeats': 1, 'cpus': 2, 'ram_bytes': 2**34,
                 'disk_kind': 'standard-cloud', 'read_iops': 375,
                 'read_mbs': 60.0},
      'archives': {'directory': '/w/archives-x', 'bytes': 10**9,
                   'images': 1000},
      'runs': [{'variant': name, 'returncode': 0, 'wall_s': wall}
               for name, wall in walls.items()],
  }
  section = report.render(results)
  assert 'standard-cloud (375 reads/s, 60 MB/s)' in section.splitlines()[0]
  assert ('ours / floor-verified = 1.25; ours-noverify / floor-verified ='
          ' 1.10; ours-rebuild / floor = 1.25') in section
  summary = report.summarize(results['runs'], list(walls))
  table = disk_report.by_disk([(results['config'], summary)])
  assert ('| standard-cloud (375 reads/s, 60 MB/s) | 40.0 | 80.0 | 76.0 |'
          ' 100.0 | 88.0 | 50.0 | 1.25 | 1.10 | 1.25 |') in table
  # Results from before the throttle were read at the disk's own speed.
  del results['config']['read_iops'], results['config']['read_mbs']
  assert 'unthrottled' in report.render(results).splitlines()[0]
