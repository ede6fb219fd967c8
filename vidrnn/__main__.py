"""``python -m vidrnn <pipeline> key=value ...``: the ``vidrnn`` command without its installed script."""
from vidrnn.cli import main

main()
