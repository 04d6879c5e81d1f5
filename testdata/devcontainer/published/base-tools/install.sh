#!/bin/sh
set -e
mkdir -p /opt/features /opt/base-tools
echo base-tools >> /opt/features/order
echo "$FLAVOUR" > /opt/base-tools/flavour
