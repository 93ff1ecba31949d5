"""`make demo` (python -m kdc_ros.demo): real footage of people through the live node (make_demo),
and where that footage comes from (footage)."""
