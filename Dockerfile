# syntax=docker/dockerfile:1
# notifyd's container image (docs/operations.md, "Installing", "A container"; compose.yaml
# runs it with PostgreSQL and a mail catcher). Two stages: `build` turns this checkout and
# the locked dependencies (requirements/run.txt, hashes checked) into wheels; the final
# stage installs those wheels alone into python:3.11-slim, so no compiler, source tree or
# download cache reaches the image. The final image runs as an unprivileged user and
# writes only to its state volume (/var/lib/notifyd) and /tmp: it runs with
# `--read-only --tmpfs /tmp`. tests/integration/test_container.py checks these promises.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/run.txt requirements/run.txt
COPY notifyd notifyd
# Binary packages come as the wheels the lock names; a package published as source only is
# built into a wheel here, where build tools may live.
RUN python -m pip wheel --no-cache-dir --require-hashes --no-deps -r requirements/run.txt -w /wheels \
 && python -m pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim
# The wheels are mounted for the install only, not copied into a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
 && python -m pip check \
 && groupadd --system --gid 10001 notifyd \
 && useradd --system --uid 10001 --gid notifyd --home-dir /var/lib/notifyd \
      --shell /usr/sbin/nologin notifyd \
 && install -d -m 0750 -o notifyd -g notifyd /var/lib/notifyd \
 && install -d -m 0755 /etc/notifyd
# Python writes no bytecode at run time (pip compiled it at install; the root filesystem is
# read-only) and logs leave unbuffered, a line at a time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The state (link-secret, the embedded PostgreSQL's pgdata when [database] url is empty, the
# .eml outbox when [smtp] host is empty) outlives the container: a volume. Docker copies
# the folder's owner into a new volume, so the unprivileged user can write to it.
VOLUME ["/var/lib/notifyd"]
USER 10001:10001
WORKDIR /var/lib/notifyd
EXPOSE 8080
# /healthz answers 200 while the event loop runs. Python's urllib, not curl: the slim image
# has no curl and needs none. The config mounted must listen on port 8080 (any address).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["notifyd"]
CMD ["run", "--config", "/etc/notifyd/notifyd.toml"]
