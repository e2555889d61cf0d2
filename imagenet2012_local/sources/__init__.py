"""What a build reads: the inputs found in the manual dir, indexed, and read."""
