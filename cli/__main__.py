"""`python -m cli ...` runs the `clsp-search` command (as the tests and benchmarks do)."""

from cli.main import main

main()
