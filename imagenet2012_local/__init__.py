"""imagenet2012_local: a TFDS builder for the manually downloaded ImageNet 2012 archives.

Importing the package registers the `imagenet2012_local` builder with TFDS.
"""

from imagenet2012_local.imagenet2012_local_dataset_builder import Builder

__all__ = ['Builder']
