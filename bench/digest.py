"""Hashes files the fastest way a verified build could: one sequential read
each, on a thread of its own, and the digest on another (a digest is one
stream: it cannot be split across cores, but reading the next pieces need not
wait for hashing this one: 8.12 GB, cold, in a 3.5 GB memory cgroup, took
7.0-7.2 s with `hashlib.file_digest`, 6.1-6.6 s so; SHA-256 alone is ~4.7 s
of one core here).

`python bench/digest.py ALGORITHM FILE...` prints each file's hex digest. Run
as a script, not `-m`: it imports nothing but the standard library, so its
start costs milliseconds, not the seconds of importing the package (TFDS).
"""

from __future__ import annotations

import hashlib
import queue
import sys
import threading
from typing import BinaryIO

_PIECE = 1 << 20  # Reads and hashes release the GIL for pieces this large.
_PIECES_AHEAD = 8


def digest(algorithm: str, name: str) -> str:
  """The file's hex digest; a thread reads ahead while this one hashes."""
  free: queue.Queue[bytearray] = queue.Queue()
  full: queue.Queue[tuple[bytearray, int]] = queue.Queue()
  for _ in range(_PIECES_AHEAD):
    free.put(bytearray(_PIECE))

  def read(f: BinaryIO) -> None:
    while True:
      piece = free.get()
      size = f.readinto(piece)
      full.put((piece, size))
      if not size:
        return

  hashed = hashlib.new(algorithm)
  with open(name, 'rb', buffering=0) as f:  # Opened here: errors raise here.
    reader = threading.Thread(target=read, args=(f,), daemon=True)
    reader.start()
    while True:
      piece, size = full.get()
      if not size:
        break
      hashed.update(memoryview(piece)[:size])
      free.put(piece)
    reader.join()
  return hashed.hexdigest()


if __name__ == '__main__':
  algorithm, *files = sys.argv[1:]
  for file_name in files:
    print(digest(algorithm, file_name), file_name)
