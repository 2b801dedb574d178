"""The `hop` command line."""
