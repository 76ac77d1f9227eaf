"""``python -m gevb``: the ``gevb`` command."""

from gevb.cli import run

run()
