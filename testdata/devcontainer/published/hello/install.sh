#!/bin/sh
set -e
# base-tools (a dependency) must be installed first and its ENV visible.
test -f /opt/base-tools/flavour
test "$BASE_TOOLS" = /opt/base-tools
mkdir -p /opt/hello/bin
echo hello >> /opt/features/order
printf '%s\n' "$GREETING" > /opt/hello/greeting
printf '%s\n' "$LOUD" > /opt/hello/loud
printf '%s %s %s %s\n' "$_REMOTE_USER" "$_REMOTE_USER_HOME" "$_CONTAINER_USER" "$_CONTAINER_USER_HOME" > /opt/hello/users
printf '#!/bin/sh\necho "%s"\n' "$GREETING" > /opt/hello/bin/hello
chmod 755 /opt/hello/bin/hello
