"""What is checked before and while a build runs: digests, paths it may not delete, the lock, free space."""
