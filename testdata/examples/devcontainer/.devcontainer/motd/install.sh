#!/bin/sh
set -e
printf '%s\n' "$MESSAGE" > /etc/motd
echo "motd for $_REMOTE_USER ($_REMOTE_USER_HOME): $MESSAGE"
