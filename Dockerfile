# syntax=docker/dockerfile:1
# vios container images: one build stage compiles the three binaries on Debian bookworm, three
# runtime targets carry only what each needs.
#
#   agent     vios-agent + vios-csi (the node DaemonSet runs both: the CSI node plugin mounts
#             through the agent), with open-iscsi, e2fsprogs, xfsprogs, util-linux, fuse3; root
#             (it opens devices, mounts, runs iscsiadm; the DaemonSet grants SYS_ADMIN only)
#   operator  vios-operator; non-root (65532)
#   csi       vios-csi for the CSI controller Deployment; non-root by default (65532; the chart
#             runs it as uid 0 without capabilities when it must open root-owned pool files)
#
#   podman build --target operator -t vios-operator .      (scripts/build-image builds all three)
#
# Reproducible: SOURCE_DATE_EPOCH (the commit time) fixes timestamps, -ffile-prefix-map removes
# the build path from the binaries, runtime libraries are installed at exactly the versions the
# build linked against (pkg-list, below), and DEBIAN_SNAPSHOT pins every package to one
# snapshot.debian.org date.
ARG BASE_IMAGE=docker.io/library/debian:bookworm

FROM ${BASE_IMAGE} AS base
# e.g. 20250520T000000Z: take every package from snapshot.debian.org at that moment.
ARG DEBIAN_SNAPSHOT=
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN set -eu; \
    if [ -n "$DEBIAN_SNAPSHOT" ]; then \
      rm -f /etc/apt/sources.list.d/*; \
      printf 'deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/%s bookworm main\ndeb [check-valid-until=no] http://snapshot.debian.org/archive/debian-security/%s bookworm-security main\n' \
        "$DEBIAN_SNAPSHOT" "$DEBIAN_SNAPSHOT" > /etc/apt/sources.list; \
    fi; \
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > /etc/apt/apt.conf.d/90vios

# ---------------------------------------------------------------------------------------------
FROM base AS build
# The build dependencies (the "build" part of scripts/setup) and Go, which fetches csi.proto once
# through the Go module proxy at configure time (cmake/FetchCsiProto.cmake) unless the context
# carries a verified copy in .image-cache/fetched/proto/csi.proto (scripts/build-image puts it
# there from a local build, for builders without network).
RUN apt-get update && apt-get install -y \
      build-essential cmake ninja-build pkg-config ca-certificates golang-go \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev nlohmann-json3-dev libyaml-cpp-dev \
      prometheus-cpp-dev libiscsi-dev libfuse3-dev liburing-dev libgtest-dev libgmock-dev \
    && rm -rf /var/lib/apt/lists/*
ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
WORKDIR /src
COPY . /src
RUN set -eu; \
    if [ -f .image-cache/fetched/proto/csi.proto ]; then \
      mkdir -p /build/fetched/proto && cp .image-cache/fetched/proto/csi.proto /build/fetched/proto/; \
    fi; \
    cmake -G Ninja -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DVIOS_WERROR=OFF \
      -DCMAKE_CXX_FLAGS="-ffile-prefix-map=/src/=" -DCMAKE_C_FLAGS="-ffile-prefix-map=/src/="; \
    ninja -C /build -j"$(nproc)" vios-agent vios-operator vios-csi; \
    mkdir -p /out/usr/bin; \
    install -m 0755 -s /build/node-agent/app/vios-agent /build/operator/vios-operator \
      /build/csi-driver/vios-csi /out/usr/bin/
# pkgs BIN...: the Debian packages, pinned to the installed versions, whose shared libraries BIN
# links against (merged /usr: each library is looked up as linked, resolved, with and without
# /usr); each runtime target installs exactly these.
RUN set -eu; \
    pkgs() { \
      for b in "$@"; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do \
        real=$(realpath "$lib"); \
        for p in "$lib" "$real" "${lib#/usr}" "${real#/usr}" "/usr$lib" "/usr$real"; do \
          if pkg=$(dpkg -S "$p" 2>/dev/null); then echo "${pkg%%:*}"; break; fi; \
        done; \
      done | sort -u | xargs -r dpkg-query -W -f '${Package}=${Version}\n'; }; \
    pkgs /out/usr/bin/vios-agent /out/usr/bin/vios-csi > /out/agent.packages; \
    pkgs /out/usr/bin/vios-operator > /out/operator.packages; \
    pkgs /out/usr/bin/vios-csi > /out/csi.packages; \
    head -n 100 /out/*.packages

# ---------------------------------------------------------------------------------------------
FROM base AS runtime
ARG SOURCE_DATE_EPOCH=0
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/vios-dev/vios" \
      org.opencontainers.image.url="https://github.com/vios-dev/vios" \
      org.opencontainers.image.vendor="vios" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm"
# Drop what makes two builds of one commit differ: apt's logs and caches, ldconfig's aux cache.
RUN printf '#!/bin/sh\nrm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/ldconfig/aux-cache /var/log/apt /var/log/dpkg.log /var/log/alternatives.log\n' \
      > /usr/local/sbin/vios-clean && chmod 0755 /usr/local/sbin/vios-clean

FROM runtime AS agent
LABEL org.opencontainers.image.title="vios-agent" \
      org.opencontainers.image.description="vios node image: vios-agent (the VIOS of a node) and the CSI node plugin (vios-csi --mode=node)"
COPY --from=build /out/agent.packages /tmp/
RUN apt-get update && apt-get install -y $(cat /tmp/agent.packages) \
      open-iscsi e2fsprogs xfsprogs util-linux mount fuse3 ca-certificates \
    && rm /tmp/agent.packages && vios-clean
COPY --from=build /out/usr/bin/vios-agent /out/usr/bin/vios-csi /usr/bin/
ENTRYPOINT ["/usr/bin/vios-agent"]

FROM runtime AS operator
LABEL org.opencontainers.image.title="vios-operator" \
      org.opencontainers.image.description="vios-operator: admits VIOSMembers, runs the node DaemonSet, aggregates cluster health"
COPY --from=build /out/operator.packages /tmp/
RUN apt-get update && apt-get install -y $(cat /tmp/operator.packages) ca-certificates \
    && rm /tmp/operator.packages && vios-clean
COPY --from=build /out/usr/bin/vios-operator /usr/bin/
USER 65532:65532
ENTRYPOINT ["/usr/bin/vios-operator"]

FROM runtime AS csi
LABEL org.opencontainers.image.title="vios-csi" \
      org.opencontainers.image.description="vios CSI controller (vios-csi --mode=controller)"
COPY --from=build /out/csi.packages /tmp/
RUN apt-get update && apt-get install -y $(cat /tmp/csi.packages) ca-certificates \
    && rm /tmp/csi.packages && vios-clean
COPY --from=build /out/usr/bin/vios-csi /usr/bin/
USER 65532:65532
ENTRYPOINT ["/usr/bin/vios-csi"]
