# syntax=docker/dockerfile:1
ARG BASE=alpine
FROM ${BASE} AS build
RUN --mount=type=cache,target=/x \
    --network=none <<EOF
apk add gcc
EOF
ENV A=1 B="two words"
ENV LEGACY some value
LABEL "k"="v"
COPY --chmod=755 <<-"run.sh" /usr/local/bin/
	#!/bin/sh
	echo "$A"
	run.sh
RUN 3<<out.txt cat /dev/fd/3
hello $A
out.txt
ONBUILD RUN <<EOF
echo triggered
EOF
HEALTHCHECK --interval=5s CMD ["curl", "-f", "http://localhost/"]
CMD ["sh", "-c", "echo hi"]
