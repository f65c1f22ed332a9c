"""``python -m drnn`` is the ``drnn`` command."""

from .cli import main

main()
