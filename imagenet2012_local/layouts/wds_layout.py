"""The WebDataset layout: the tar shards PyTorch pipelines (timm, OpenCLIP,
HF `datasets`) read, named as timm's `imagenet-1k-wds`.

This module defines the folder, for `wds_build` to write straight from the
archives through `WdsLayout`:

- Files: `imagenet1k-<split>-%04d.tar`, e.g. `imagenet1k-train-0000.tar` to
  `imagenet1k-train-1023.tar`; `DEFAULT_SHARDS` gives the counts
  (`imagenet-1k-wds`'s 1024 train and 64 validation files, and 128 for test,
  ~780 images each like validation's). Shard sizes differ by at most one
  (`classic_layout.shard_sizes`, the same plan as the classic layout).
- Each sample is three tar members sharing a key, the image's file name
  without `.JPEG` (`n01440764_10026`, as timm's reader assumes when it adds
  `.JPEG` back): `<key>.jpg`, the JPEG bytes as stored in the archive (or
  fixed by content); `<key>.cls`, the 0-based class index over the sorted
  wnids in decimal ASCII (`-1` in test, as TFDS's `label`); `<key>.json`,
  `{"filename": ..., "label": ..., "wnid": ...}` (`wnid` empty in test).
- Members are ustar headers with fixed fields (mtime 0, uid and gid 0, no
  user or group name, mode 0644), so two builds are byte-identical; a shard
  ends with two zero blocks, what `tar` and Python's `tarfile` read as the end
  (no padding to tar's 10 KiB record: nothing reads it).
- `_info.json` beside the shards: for each split its files, their sample
  counts and the total (`info_json`), the split description timm's
  `wds/` reader loads from the dataset folder.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Only for type hints: workers need not import the planner.
  from imagenet2012_local.engine import plan

DEFAULT_SHARDS = {'train': 1024, 'validation': 64, 'test': 128}
INFO_FILE = '_info.json'
_PREFIX = 'imagenet1k'
_BLOCK = tarfile.BLOCKSIZE  # 512: headers and data are padded to blocks.
_END_OF_ARCHIVE = bytes(2 * _BLOCK)
_MEMBER_MODE = 0o644


def shard_name(split: str, index: int) -> str:
  """The file name of shard `index` (0-based) of `split`."""
  return f'{_PREFIX}-{split}-{index:04d}.tar'


def sample_key(file_name: str) -> str:
  """The key of an image's members: its file name without the extension
  (ImageNet's names hold one dot, before `JPEG`)."""
  return os.path.splitext(file_name)[0]


def _header_tail() -> bytes:
  """The ustar header's bytes after the checksum, the same for every member:
  a regular file, no link, the magic, no user or group name, no device."""
  return b''.join([
      b'0',  # typeflag: a regular file.
      bytes(100),  # linkname
      b'ustar\x0000',  # magic and version
      bytes(32 + 32),  # uname, gname: none.
      bytes(8 + 8),  # devmajor, devminor: empty, as tarfile leaves them.
      bytes(155 + 12),  # prefix: none; then the padding to 512 bytes.
  ])


_HEADER_TAIL = _header_tail()
# The checksum counts its own 8-byte field as spaces.
_CONSTANT_SUM = sum(_HEADER_TAIL) + 8 * ord(' ')


def header(name: str, size: int) -> bytes:
  """The ustar header of a member `name` of `size` bytes: mode 0644, uid
  and gid 0, mtime 0, no user or group name, the same on every build.

  It is the header Python's `tarfile` writes for such a member (the tests
  compare them), built here directly: `TarInfo.tobuf`, three times a
  sample, cost several times what serializing a whole TFDS example does.
  """
  # Member names (a key of at most 24 bytes by `archive_facts`' patterns,
  # then `.json` at most) fit the 100-byte name field; sizes under 8 GiB fit
  # its 11 octal digits.
  head = b''.join([
      name.encode().ljust(100, b'\x00'),
      b'%07o\x00' % _MEMBER_MODE,
      b'0000000\x00' * 2,  # uid, gid
      b'%011o\x00' % size,
      b'%011o\x00' % 0,  # mtime
  ])
  return b''.join([head, b'%06o\x00 ' % (sum(head) + _CONSTANT_SUM), _HEADER_TAIL])


def make_sample(
    image: bytes, label: int, file_name: str, class_names: Sequence[str]
) -> bytes:
  """The tar bytes of one sample: `.jpg`, `.cls` and `.json` members.

  Args:
    image: The JPEG bytes, written as they are.
    label: 0-based index into `class_names`, or -1 for an unlabelled image.
    file_name: The image's file name, e.g. `n01440764_10026.JPEG`.
    class_names: The wnids, sorted (the dataset's label names).
  """
  key = sample_key(file_name)
  metadata = {
      'filename': file_name,
      'label': label,
      'wnid': class_names[label] if label >= 0 else '',
  }
  members = [
      (f'{key}.jpg', image),
      (f'{key}.cls', str(label).encode()),
      (f'{key}.json', json.dumps(metadata, sort_keys=True).encode()),
  ]
  # One join: each member's header, data, and zeros to the next block.
  return b''.join(
      part
      for name, data in members
      for part in (header(name, len(data)), data, bytes(-len(data) % _BLOCK))
  )


def write_shard(path: Path, samples: Iterator[bytes]) -> None:
  """Writes the samples of `make_sample` as one tar file at `path`."""
  with open(path, 'wb') as f:
    for sample in samples:
      f.write(sample)
    f.write(_END_OF_ARCHIVE)


def info_json(shard_lengths: Mapping[str, Sequence[int]]) -> str:
  """The `_info.json` of a build whose split `s` has `shard_lengths[s]`
  samples in its files, in shard order."""
  splits = {
      split: {
          'name': split,
          'num_samples': sum(lengths),
          'filenames': [shard_name(split, k) for k in range(len(lengths))],
          'shard_lengths': list(lengths),
      }
      for split, lengths in shard_lengths.items()
  }
  return json.dumps({'name': 'imagenet-1k', 'splits': splits}, indent=2) + '\n'


class WdsLayout:
  """This layout as the build engine writes it (a `shard_writer.Layout`)."""

  identity = 'webdataset 1'

  def __init__(self, output_dir: Path, class_names: Sequence[str]):
    """Shards go into `output_dir`; label N is `class_names[N]`."""
    self._output_dir = output_dir
    self._class_names = tuple(class_names)

  def shard_path(self, task: plan.ShardTask) -> str:
    return str(self._output_dir / shard_name(task.split, task.index))

  def encode(self, image: bytes, label: int, file_name: str) -> bytes:
    return make_sample(image, label, file_name, self._class_names)

  def write(self, path: str, records: Iterator[tuple[str, bytes]]) -> None:
    write_shard(Path(path), (sample for _, sample in records))

  def companions(self, path: str) -> list[str]:
    del path  # A shard is one file.
    return []
