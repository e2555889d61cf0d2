"""The benchmark's floor hashes what the checksum gate hashes."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from bench import digest

_SCRIPT = Path(digest.__file__)


@pytest.mark.parametrize('size', [0, 1, digest._PIECE, 9 * digest._PIECE + 7])
def test_digest_equals_hashlib(tmp_path, size):
  # Sizes around the read piece: empty, short, exact, and more pieces than
  # the reader may hold ahead (its buffers are reused in order).
  data = (bytes(range(251)) * (size // 251 + 1))[:size]
  path = tmp_path / 'archive.tar'
  path.write_bytes(data)
  for algorithm in ('sha256', 'md5'):
    assert digest.digest(algorithm, str(path)) == hashlib.new(algorithm, data).hexdigest()


def test_script_prints_a_line_per_file(tmp_path):
  paths = [tmp_path / 'a', tmp_path / 'b']
  for i, path in enumerate(paths):
    path.write_bytes(b'x' * (i + 1))
  out = subprocess.run(
      [sys.executable, str(_SCRIPT), 'sha256', *map(str, paths)],
      check=True, capture_output=True, text=True,
  ).stdout.splitlines()
  assert out == [
      f'{hashlib.sha256(p.read_bytes()).hexdigest()} {p}' for p in paths
  ]
