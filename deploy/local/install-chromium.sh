#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test (tests/integration/test_dashboard_browser.py),
# from Debian's packages, once: Playwright drives it at /usr/bin/chromium and never downloads a
# browser of its own. Run by `make test` (the `browser` rule).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

[[ -x $CHROMIUM ]] && exit 0
echo "chromium: installing chromium with apt-get (for the dashboard's browser test)"
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
[[ -x $CHROMIUM ]] || { echo "chromium: $CHROMIUM still missing after apt-get" >&2; exit 1; }
