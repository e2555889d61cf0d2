"""`imagenet2012-local report`: contact sheets, charts and a summary of a build.

Reads a prepared dataset in one streaming pass per split, without decoding
images: sizes come from the JPEG headers, the contact-sheet sample is a
reservoir sample, and memory stays constant apart from the per-class counters
and one width/height/bytes entry per image (12 bytes each, 16 MB for full
ImageNet). Only the sampled and the fixed images are decoded, for drawing.

Modules: `command` (the command line), `records` (reading the stored
records), `scan` (the pass over a split), `classes` (class names and counts),
`sheets` and `charts` (the pictures), `summary` (the Markdown) and `layout`
(the files written).
"""

from __future__ import annotations

from imagenet2012_local.report.layout import SUMMARY_FILE

__all__ = ['SUMMARY_FILE']
