# tensafe-ops: the exporter and the Alertmanager webhook in one image (`serve --role` picks).
#   docker build -t tensafe-ops .
#   docker run --rm -p 9877:9877 tensafe-ops serve --demo
# Runs with a read-only root filesystem: it writes only to /var/lib/tensafe-ops (state) and /tmp.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.txt requirements-build.txt ./
COPY scripts/install-app.sh scripts/
RUN scripts/install-app.sh deps /opt/tensafe-ops
COPY pyproject.toml README.md ./
COPY tensafe_ops tensafe_ops
COPY exporter exporter
COPY webhook webhook
COPY operations operations
RUN scripts/install-app.sh app /src /opt/tensafe-ops

FROM ${PYTHON_IMAGE}
ARG UID=10001
ENV PATH=/opt/tensafe-ops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    TMPDIR=/tmp \
    TENSAFE_OPS_SERVER__HOST=0.0.0.0 \
    TENSAFE_OPS_SERVER__STATE_DIR=/var/lib/tensafe-ops
RUN groupadd --system --gid "${UID}" tensafe \
    && useradd --system --uid "${UID}" --gid "${UID}" --no-create-home \
        --home-dir /var/lib/tensafe-ops --shell /usr/sbin/nologin tensafe \
    && install -d -o "${UID}" -g "${UID}" -m 0750 /var/lib/tensafe-ops \
    && install -d -m 0755 /etc/tensafe-ops
COPY --from=builder /opt/tensafe-ops /opt/tensafe-ops
USER ${UID}:${UID}
WORKDIR /var/lib/tensafe-ops
VOLUME ["/var/lib/tensafe-ops"]
EXPOSE 9877
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9877/healthz', timeout=4)"]
ENTRYPOINT ["tensafe-ops"]
CMD ["serve", "--config", "/etc/tensafe-ops/config.yaml"]
