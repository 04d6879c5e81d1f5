#!/bin/sh
# A stand-in for an application's sources (COPY step of the cache workload).
echo "hello from the cairn cache benchmark"
