#!/usr/bin/env bash
# Renders the report of the book's chapter 9 example (models/ch09/listing_9_01.dl, f at x1=1,
# x2=2) and screenshots it with headless Chromium into docs/report.png (or the path given).
# Needs Graphviz and Chromium: apt-get install -y graphviz chromium
# Usage: scripts/screenshot_report.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/report.png}
html=build/report.html
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "screenshot_report.sh: needs Chromium (apt-get install -y chromium)" >&2
  exit 1
fi
mkdir -p build "$(dirname "$out")"
wengert report models/ch09/listing_9_01.dl --of f -i x1=1 -i x2=2 -o "$html"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --screenshot="$PWD/$out" --window-size=1200,1600 \
  "file://$PWD/$html" 2>/dev/null
echo "wrote $out ($(wc -c <"$out") bytes)"
