"""The `imagenet2012-local` command line and its subcommands."""
