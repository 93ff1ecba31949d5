#!/usr/bin/env bash
# Build kdc_msgs with CMake + rosidl against the ROS 2 wheels installed in the virtual environment
# (the venv is the ament prefix), and install it into a prefix of ours.
# Usage: scripts/build_msgs.sh VENV BUILD_DIR INSTALL_PREFIX
set -euo pipefail
venv=$(realpath "$1"); build=$2; prefix=$(realpath -m "$3")
py="$venv/bin/python"

# The wheels' exported CMake targets name include folders of the machine that built them; CMake
# refuses to configure while those do not exist. Point them at this interpreter's and numpy's.
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$venv/share" "$venv/lib" 2>/dev/null |
  xargs -0 -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" || true

export AMENT_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
cmake -S kdc_msgs -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DPython3_EXECUTABLE="$py" -DPython3_FIND_VIRTUALENV=ONLY > "$build.log" 2>&1 ||
  { cat "$build.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
cmake --install "$build" >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
echo "kdc_msgs installed into $prefix"
