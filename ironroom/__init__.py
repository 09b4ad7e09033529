"""The ``ironroom`` command line: one command, a subcommand for each part."""
