"""Scripts the bench runs inside the peers' own virtual environments (see kdc_ros.bench.venvs).

They import nothing from kdc_ros or kdc_model: only the standard library, numpy and the peer's own
package, plus `timing.py` beside them (the one timing protocol every row of the bench uses).
"""
