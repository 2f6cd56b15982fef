"""The click command line: thin commands over the client and storage libraries."""
