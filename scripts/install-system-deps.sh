#!/usr/bin/env bash
# Debian packages some tests need: promtool and prometheus (package prometheus), amtool and
# prometheus-alertmanager (package prometheus-alertmanager), curl (the demo's printed command is
# run as printed), chromium and a font for it (the status pages' browser tests drive Debian's
# Chromium through Playwright; no `playwright install`). Run by `make test` when CI=true,
# where a missing dependency must fail rather than skip; on a laptop those tests skip instead.
set -euo pipefail
need=()
{ command -v promtool && command -v prometheus; } >/dev/null || need+=(prometheus)
{ command -v amtool && command -v prometheus-alertmanager; } >/dev/null || need+=(prometheus-alertmanager)
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing system packages: ${need[*]} (install them with apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
