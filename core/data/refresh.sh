#!/usr/bin/env bash
# Re-downloads the upstream referrer lists into core/data/matomo/ (verbatim), then shows
# what changed. Needs internet access and curl. Called by `cargo xtask refresh-lists`.
#
# After refreshing: update the commit/date in core/data/README.md, re-read the GA4 article
# (URL printed below) and compare it with core/data/ga4-channel-rules.json, then run
#   cargo test -p closeloop-core
# A regex that changed in the rules file fails the build until src/channel.rs has a matcher.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="matomo-org/searchengine-and-social-list"
ref="${MATOMO_LIST_REF:-master}"
base="https://raw.githubusercontent.com/${repo}/${ref}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for f in SearchEngines.yml Socials.yml; do
  curl --fail --silent --show-error --location --retry 3 --max-time 60 \
    -o "$tmp/$f" "$base/$f"
  if [ ! -s "$tmp/$f" ]; then
    echo "refresh: $f came back empty; keeping the old one" >&2
    exit 1
  fi
done

commit="$(curl --fail --silent --show-error --location --max-time 30 \
  -H 'Accept: application/vnd.github.sha' \
  "https://api.github.com/repos/${repo}/commits/${ref}" || echo unknown)"

for f in SearchEngines.yml Socials.yml; do
  if cmp -s "$tmp/$f" "$here/matomo/$f"; then
    echo "refresh: $f unchanged"
  else
    diff -u "$here/matomo/$f" "$tmp/$f" | head -n 200 || true
    mv "$tmp/$f" "$here/matomo/$f"
    echo "refresh: $f updated"
  fi
done

echo "refresh: upstream ${repo}@${ref} is commit ${commit}; date $(date -u +%Y-%m-%d)"
echo "refresh: record both in core/data/README.md"
echo "refresh: re-check the rules against https://support.google.com/analytics/answer/9756891"
