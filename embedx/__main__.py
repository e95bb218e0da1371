"""``python -m embedx``: the same command line as the ``embedx`` script (for environments without it on PATH)."""

from embedx.cli import main

if __name__ == "__main__":
    main()
