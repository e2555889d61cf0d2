"""How shards look on disk: TFDS, classic TFRecords, WebDataset, and the variants."""
