"""python -m kdc_ros.node: the kdc node (as the kdc_node command)."""
import sys

from .kdc_node import main

sys.exit(main())
