# Sourced by scripts/_venv.sh: install the CJK font the PDFs embed, from the npm
# registry, into .fonts/ (Noto Sans SC, TrueType outlines, SIL OFL 1.1). Pinned by
# package version and by the SHA-256 of each font file; nothing from the machine's own
# fonts is used.
set -euo pipefail
font_package="@expo-google-fonts/noto-sans-sc@0.4.3"
declare -A font_files=(
  [NotoSansSC-Regular.ttf]="400Regular/NotoSansSC_400Regular.ttf d45f67f0a7c0ca3f256950777ce6a61cc7ce5f9696d02900cbbaac25f8aa7d16"
  [NotoSansSC-Bold.ttf]="700Bold/NotoSansSC_700Bold.ttf 9a38ae0ab28cd5a256f9ea8e00dedc688aac17f7915fcb000572990afa956b96"
)
fonts_ok() {
  for name in "${!font_files[@]}"; do
    read -r _ sum <<<"${font_files[$name]}"
    [ -f ".fonts/$name" ] && echo "$sum  .fonts/$name" | sha256sum --check --status || return 1
  done
}
if ! fonts_ok; then
  command -v npm >/dev/null 2>&1 || { echo "npm is needed once to fetch the CJK font ($font_package)" >&2; exit 1; }
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$font_package" >/dev/null)
  mkdir -p .fonts
  for name in "${!font_files[@]}"; do
    read -r path _ <<<"${font_files[$name]}"
    tar -xzf "$work"/*.tgz -C "$work" "package/$path"
    cp "$work/package/$path" ".fonts/$name"
  done
  tar -xzf "$work"/*.tgz -C "$work" package/LICENSE_FONT && cp "$work/package/LICENSE_FONT" .fonts/OFL.txt
  rm -rf "$work"
  fonts_ok || { echo "the downloaded font files do not match their pinned SHA-256" >&2; exit 1; }
fi
