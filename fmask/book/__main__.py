"""``python -m fmask.book ...`` = ``fmask book ...``."""
import sys

from fmask.cli import main

raise SystemExit(main(["book", *sys.argv[1:]]))
