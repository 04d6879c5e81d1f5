#!/bin/sh
set -e
mkdir -p "$TARGET_DIR"
echo "$GREETING" > "$TARGET_DIR/message"
