#!/usr/bin/env bash
# `make demo`: start the bundled emulator serving samples/, run the real `zuotang enhance`
# over a list of URLs pointing at it, show the report and where the images are, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
out=${DEMO_OUT:-out/demo}
work=$(mktemp -d)
emulator_pid=
cleanup() {
    if [ -n "$emulator_pid" ]; then
        kill "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

appcode=demo-appcode
"$bin/zuotang" emulator --port 0 --serve samples --appcode "$appcode" --latency 0.5-1.5 \
    >"$work/url" 2>"$work/emulator.log" &
emulator_pid=$!
for _ in $(seq 100); do
    [ -s "$work/url" ] && break
    kill -0 "$emulator_pid" 2>/dev/null || { cat "$work/emulator.log" >&2; exit 1; }
    sleep 0.1
done
base=$(head -n 1 "$work/url")
[ -n "$base" ] || { echo "demo: the emulator did not start" >&2; exit 1; }
echo "demo: emulator listening on $base (serving samples/)" >&2

{
    echo "# sample photos served by the emulator"
    for f in samples/*.jpg samples/*.png samples/*.webp samples/*.bmp samples/*.tiff; do
        echo "$base/files/$(basename "$f")"
    done
} >"$work/urls.txt"

rm -rf "$out"
echo "demo: zuotang enhance urls.txt --type clean --scale 2 -o $out" >&2
ZUOTANG_APPCODE=$appcode ZUOTANG_ENDPOINT=$base/tasks/visual/scale \
    "$bin/zuotang" enhance "$work/urls.txt" --type clean --scale 2 -o "$out" >"$work/saved.txt"

echo >&2
echo "Saved images (stdout of zuotang enhance):"
cat "$work/saved.txt"
echo
echo "Report: $out/report.csv"
"$bin/python" - "$out/report.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
for row in rows:
    name = row["input"].rsplit("/", 1)[-1]
    size = f'{row["width"]}x{row["height"]}' if row["width"] else "-"
    print(f'  {name:28} {row["outcome"]:8} {size:>10}  state {row["state"] or "-":>3}  '
          f'{row["attempts"]} call(s)  {row["elapsed"]} s')
PY
echo
"$bin/python" - "$base/__emulator__/stats" <<'PY'
import json, sys, urllib.request
stats = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
print(f"Emulator counters: {stats['calls']} calls, {stats['billed']} billed, "
      f"{stats['throttled']} throttled")
PY
