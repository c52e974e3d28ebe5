"""``python -m separation train|separate ...`` (also ``torchrun -m separation train``)."""

from .cli import main

if __name__ == "__main__":
    main()
