#!/usr/bin/env bash
# Build .dvc/plots/offline.html: DVC's plots page with Vega, Vega-Lite and vega-embed
# inlined (the versions `dvc plots show` loads from a CDN), so plots render offline.
# Run once by a maintainer (needs npm); the result is committed and set as
# DVC's `plots.html_template` in .dvc/config.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 >/dev/null
for archive in *.tgz; do mkdir "${archive%.tgz}" && tar xzf "$archive" -C "${archive%.tgz}"; done
out="$root/.dvc/plots/offline.html"
mkdir -p "$(dirname "$out")"
{
  printf '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>DVC Plot</title>\n'
  for bundle in vega-5.20.2/package/build/vega.min.js \
                vega-lite-5.2.0/package/build/vega-lite.min.js \
                vega-embed-6.18.2/package/build/vega-embed.min.js; do
    printf '<script>\n'; cat "$bundle"; printf '\n</script>\n'
  done
  printf '<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n'
} > "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
