#!/bin/sh
# Remakes this directory with the release before the connector model
# (issue 11): commit ca96ec5, "issue 10 complete". Run from anywhere in the
# repository, with Dovecot installed (scripts/test installs it as root).
set -eu
repo=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$tmp/release" 2>/dev/null || true; rm -rf "$tmp"' EXIT
git -C "$repo" worktree add --detach "$tmp/release" ca96ec5
(cd "$tmp/release" && go build -o "$tmp/mailferry-ca96ec5" ./cmd/mailferry)
cd "$repo/cmd/mailferry"
MAILFERRY_MAKE_UPGRADE_DATA="$tmp/mailferry-ca96ec5" MAILFERRY_REQUIRE_SERVERS=1 \
	go test -count=1 -v -run '^TestMakeUpgradeData$' .
