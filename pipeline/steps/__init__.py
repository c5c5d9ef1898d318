"""Pure text-processing steps: no Luigi, no file I/O; each runs on one string in a REPL."""
