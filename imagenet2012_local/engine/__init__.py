"""The build: plan, write shards (by offset or in order), fix images, resume, publish."""
