#!/usr/bin/env bash
# Regenerates data/common-passwords.txt, the list of common breached passwords that new passwords are
# checked against (src/auth/policy.rs embeds it), from a pinned npm package:
#
#   @zxcvbn-ts/language-common 4.1.3 (MIT), file src/passwords.json: zxcvbn's frequency-ranked list
#   of the most common passwords (derived from Xato's corpus of 10 million leaked passwords).
#
# The tarball is fetched with `npm pack` and checked against the pinned integrity hash, so a re-run
# gives the same file byte for byte. Entries are lower-cased (the check is case-insensitive),
# deduplicated and sorted by their UTF-8 bytes (the server binary-searches the list), one a line.
# The package's licence goes next to the list.
# Needs npm, node, tar and openssl. To move to a newer version, change VERSION and INTEGRITY (from
# `npm view @zxcvbn-ts/language-common@VERSION dist.integrity`), run this, and review the diff.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=@zxcvbn-ts/language-common
VERSION=4.1.3
INTEGRITY=sha512-g2bg4skmlJG9aJqC/nWziZzgYpSe/f3rKeGobrkdFiOrfZVFqqzUgC6BUQWuX54Sua9j0Jxxt+1bf4f/Mal1Kg==

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

npm pack "$PACKAGE@$VERSION" --pack-destination "$work" --silent >/dev/null
tarball=$(echo "$work"/*.tgz)
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 | tr -d '\n')"
if [ "$actual" != "$INTEGRITY" ]; then
  echo "update-common-passwords: $PACKAGE@$VERSION does not match the pinned integrity" >&2
  echo "  expected $INTEGRITY" >&2
  echo "  got      $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/src/passwords.json package/LICENSE.txt

mkdir -p data
node - "$work/package/src/passwords.json" > data/common-passwords.txt <<'JS'
const fs = require("fs");
const ranked = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const seen = new Set();
const out = [];
for (const entry of ranked) {
  const p = String(entry).trim().toLowerCase();
  // One a line: an entry that is empty or spans lines could not be read back.
  if (p === "" || /[\r\n]/.test(p) || seen.has(p)) continue;
  seen.add(p);
  out.push(p);
}
// Byte order, as Rust compares strings (JavaScript's own sort compares UTF-16 code units).
out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
process.stdout.write(out.join("\n") + "\n");
JS
cp "$work/package/LICENSE.txt" data/common-passwords.LICENSE
echo "data/common-passwords.txt: $(wc -l < data/common-passwords.txt) passwords from $PACKAGE@$VERSION"
