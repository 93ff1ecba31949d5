"""python -m kdc_ros.demo: see kdc_ros.demo.make_demo."""
import sys

from .make_demo import main

sys.exit(main())
