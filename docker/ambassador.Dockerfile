# podkit/ambassador: one static binary, nothing else. Built by `cargo xtask images`
# from a context holding only the binary (no pull: FROM scratch; legacy
# builder, so no syntax line and no BuildKit-only features).
FROM scratch
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ambassador" \
      org.opencontainers.image.description="Ambassador: localhost proxy for the app (TCP, HTTP forward with CONNECT, reverse proxy)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY ambassador /usr/local/bin/ambassador
USER 65532:65532
EXPOSE 9703
ENTRYPOINT ["/usr/local/bin/ambassador"]
