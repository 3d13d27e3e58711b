#!/usr/bin/env bash
# The plain-machine deployment in one command (as root, from the repository root):
#   sudo deploy/systemd/install.sh
# Installs salesintel into /opt/salesintel/.venv, the instance files into
# /var/lib/salesintel/dagster_home, the units into /etc/systemd/system, and
# starts salesintel.target. PostgreSQL must be reachable with the values of
# /etc/salesintel/salesintel.env (created from the example on first install;
# fill in the secrets, then run this script again).
set -euo pipefail
cd "$(dirname "$0")/../.."
ENV_FILE=/etc/salesintel/salesintel.env

if [ ! -f "$ENV_FILE" ]; then
  install -d -m 0750 /etc/salesintel
  install -m 0600 deploy/systemd/salesintel.env.example "$ENV_FILE"
  echo "Wrote $ENV_FILE: set the PostgreSQL password and the secrets, then run $0 again." >&2
  exit 1
fi

id salesintel >/dev/null 2>&1 || useradd --system --home-dir /var/lib/salesintel --shell /usr/sbin/nologin salesintel
install -d -o salesintel -m 0750 /var/lib/salesintel /var/lib/salesintel/home /var/lib/salesintel/dagster_home
install -m 0644 deploy/dagster.yaml /var/lib/salesintel/dagster_home/dagster.yaml
install -m 0644 deploy/systemd/workspace.yaml /var/lib/salesintel/dagster_home/workspace.yaml

[ -x /opt/salesintel/.venv/bin/python ] || python3.11 -m venv /opt/salesintel/.venv
/opt/salesintel/.venv/bin/pip install -q ".[deploy]"

install -m 0644 deploy/systemd/salesintel-*.service deploy/systemd/salesintel.target /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now salesintel.target
systemctl restart salesintel-code.service salesintel-daemon.service salesintel-webserver.service salesintel-serve.service
systemctl --no-pager --lines=0 status 'salesintel-*' || true
