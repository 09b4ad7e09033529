"""Service layer: each change is one transaction with its audit entries; the ingest and
the command line (and later the console) call the same functions."""
