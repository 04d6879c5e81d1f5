#!/bin/sh
set -e
mkdir -p /opt/features
echo after >> /opt/features/order
# hello's containerEnv PATH entry is in effect.
command -v hello > /opt/features/after-saw-hello
