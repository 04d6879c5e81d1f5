#!/bin/sh
set -e
echo "python $VERSION" > /python-installed
