"""`python -m kdc_model.evaluate`: the evaluation command by the name earlier releases and the issues
use; it is kdc_model.training.evaluate, with the same arguments."""
import sys

from .training.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
