"""imagenet2012_local: a TFDS builder for the manually downloaded ImageNet 2012 archives.

Importing the package registers the `imagenet2012_local` builder with TFDS,
and its variants `imagenet2012_local_subset`, `imagenet2012_local_real` and
`imagenet2012_local_resized`.
"""

from imagenet2012_local.imagenet2012_local_dataset_builder import Builder
from imagenet2012_local.real_builder import RealBuilder
from imagenet2012_local.resized_builder import ResizedBuilder
from imagenet2012_local.subset_builder import SubsetBuilder

__all__ = ['Builder', 'RealBuilder', 'ResizedBuilder', 'SubsetBuilder']
