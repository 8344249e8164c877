"""``python -m evalkit``: the same command line as the ``evalkit`` script."""

from evalkit.cli import main

if __name__ == "__main__":
    main()
