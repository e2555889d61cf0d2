"""The reference files and split filters of the ImageNet variants."""
